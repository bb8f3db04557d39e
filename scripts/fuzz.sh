#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ (or those named as arguments) for
# FUZZ_SECONDS seconds each (default 60), starting from the seeds in
# fuzz/seeds/<target>/. The seeds are copied to a temporary corpus first, so
# what libFuzzer adds never lands in the repository.
#
#   scripts/fuzz.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh      # a quick pass
#   scripts/fuzz.sh frame_decode         # one target
#
# Exits non-zero if any target crashes (or fails to build); a crashing input
# is saved under fuzz/artifacts/<target>/ and can be replayed with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: FUZZ_SECONDS must be a positive whole number of seconds, not '$seconds'" >&2
    exit 2
fi

# cargo-fuzz is usually installed in ~/.cargo/bin, which a CI shell may lack.
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing; install it with: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz.sh: cargo fuzz list found no targets in fuzz/" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/peeka-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [[ -d "fuzz/seeds/$target" ]]; then
        cp -R "fuzz/seeds/$target/." "$corpus/"
    else
        echo "fuzz.sh: warning: no seeds in fuzz/seeds/$target, starting from an empty corpus" >&2
    fi
    echo "==> fuzzing $target for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs)"
    if cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds"; then
        echo "==> $target: no crash in ${seconds}s ($(find "$corpus" -type f | wc -l) inputs in the corpus)"
    else
        echo "==> $target: FAILED (see the crash report above and fuzz/artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${seconds}s each without a crash"
