#!/usr/bin/env bash
# provision-bench-references.sh: install the two references that
# peeka-cli/benches/attach_side_by_side.rs measures Peeka against (issue 14):
#
#   py-spy      `pip install py-spy` (pinned): a static binary, used as
#               `py-spy dump --pid PID` on every interpreter, the floor for
#               reading anything from a process;
#   peeka       the Python implementation (PyPI package `peeka`, pinned to
#               0.1.20), which attaches with `sys.remote_exec` on 3.14: run
#               by the 3.14 interpreter of the manifest (the sid chroot's
#               /usr/bin/python3.14), and imported by the targets of its
#               rounds, so it is installed where that interpreter sees it.
#
# Nothing goes into an interpreter's own site-packages; everything is
# `pip install --target DIR`:
#   py-spy   $CACHE/py-spy-<version>        (the binary: bin/py-spy)
#   peeka    <root>/opt/peeka-bench-refs/peeka-<version> for a chrooted
#            interpreter (seen inside as /opt/peeka-bench-refs/...), or
#            $CACHE/peeka-<version>-<id> for a host one
# where CACHE is ${PEEKA_BENCH_REFS:-${XDG_CACHE_HOME:-$HOME/.cache}/peeka/bench-refs}.
#
# The installer is the pip of the newest host interpreter of the manifest
# that has one (the chroot's 3.14 has no pip), else `python3 -m pip`. peeka
# 0.1.20 is published as an sdist only: it is built once into a wheel
# ($CACHE/wheels; its optional C extension, used only by its gdb route for
# 3.8-3.13, is built for the host interpreter and unused here), then
# installed from that wheel with --no-deps (it has no dependencies).
#
# A directory is filled next to its final place and renamed when complete,
# with a stamp; a re-run keeps a directory whose stamp matches and whose
# check passes (well under a second). Then it writes the manifest the bench
# reads, $CACHE/references.json:
#
#   {"schema": 1,
#    "py_spy": {"version": "0.4.3", "binary": "<CACHE>/py-spy-0.4.3/bin/py-spy"},
#    "peeka": {"version": "0.1.20", "interpreter": "3.14",
#              "dir": "<root>/opt/peeka-bench-refs/peeka-0.1.20",   # on the host
#              "target_dir": "/opt/peeka-bench-refs/peeka-0.1.20"}, # PYTHONPATH
#    "missing": [{"what": "peeka", "reason": "..."}]}
#
# Usage: bash scripts/provision-bench-references.sh [--reinstall]
# Environment: PEEKA_BENCH_REFS (the cache directory), PEEKA_PYTHONS_MANIFEST
# (default <repo>/target/peeka-pythons.json, written by
# scripts/provision-pythons.sh), PEEKA_BENCH_PEEKA_PYTHON (the interpreter
# id that runs the Python implementation, default 3.14).
#
# Exit status: 0 when both references are installed, 1 otherwise (after
# saying what is missing: the bench then skips those cells loudly), 2 on
# usage errors.

set -euo pipefail

readonly PY_SPY_VERSION=0.4.3
readonly PEEKA_VERSION=0.1.20
readonly STAMP_NAME=.peeka-bench-refs-stamp
readonly PIP_TIMEOUT=600

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PROVISION_NAME=provision-bench-references
# shellcheck source-path=SCRIPTDIR source=lib/provision-common.sh
source "$SCRIPT_DIR/lib/provision-common.sh"
PYTHONS_MANIFEST=${PEEKA_PYTHONS_MANIFEST:-$REPO_ROOT/target/peeka-pythons.json}
CACHE=${PEEKA_BENCH_REFS:-${XDG_CACHE_HOME:-$HOME/.cache}/peeka/bench-refs}
PEEKA_PYTHON_ID=${PEEKA_BENCH_PEEKA_PYTHON:-3.14}
CHROOT_REFS=/opt/peeka-bench-refs

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
parse_flags --reinstall=REINSTALL -- "$@"

mkdir -p "$CACHE"
take_lock "$CACHE/.lock" "another run holds $CACHE/.lock"

# A host Python to read JSON with.
find_host_python || { log "no host python3"; exit 1; }

# The installer: the newest host interpreter of the manifest with a pip,
# else python3 -m pip.
if find_host_pip; then
    PIP=("${HOST_PIP[@]}")
elif python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
else
    log "no pip on this machine (no host interpreter of $PYTHONS_MANIFEST has one, nor python3)"
    exit 1
fi
PIP_OPTS=(--disable-pip-version-check --no-input --quiet)
log "installer: ${PIP[*]} ($("${PIP[@]}" --version | awk '{print $2}'))"

MISSING=()
add_missing() {
    MISSING+=("$1"$'\x1f'"${2//[$'\n\x1f']/ }")
    log "MISSING $1: $2"
}

# fill FINAL_DIR STAMP CHECK_COMMAND... -- PIP_INSTALL_ARGS...: installs into
# a fresh directory next to FINAL_DIR, renames it into place; CHECK_COMMAND
# (with {} standing for the directory) must pass. Returns 1 on failure,
# with FILL_ERROR set.
fill() {
    local final=$1 stamp=$2
    shift 2
    local check=()
    while [[ $1 != -- ]]; do
        check+=("$1")
        shift
    done
    shift
    if ((REINSTALL == 0)) && stamp_matches "$final" "$stamp" && run_check "$final" "${check[@]}"; then
        log "up to date: $final"
        return 0
    fi
    fresh_dir_beside "$final"
    local tmp=$FRESH_DIR
    if ! timeout "$PIP_TIMEOUT" "${PIP[@]}" install "${PIP_OPTS[@]}" --no-compile --target "$tmp" "$@" \
        >"$tmp.log" 2>&1; then
        FILL_ERROR="pip install failed: $(grep -a -E 'ERROR|error' "$tmp.log" | tail -n 2 | tr '\n' ' ')"
        tail -n 15 "$tmp.log" >&2 || true
        rm -rf "$tmp" "$tmp.log"
        return 1
    fi
    rm -f "$tmp.log"
    printf '%s\n' "$stamp" >"$tmp/$STAMP_NAME"
    move_into_place "$tmp" "$final"
    if ! run_check "$final" "${check[@]}"; then
        FILL_ERROR="installed in $final, but its check failed: $CHECK_OUTPUT"
        return 1
    fi
    log "installed: $final"
}

CHECK_OUTPUT=""
run_check() {
    local dir=$1
    shift
    local argv=() item
    for item in "$@"; do
        argv+=("${item//\{\}/$dir}")
    done
    CHECK_OUTPUT=$(timeout 120 "${argv[@]}" 2>&1) || {
        CHECK_OUTPUT=$(tail -n 2 <<<"$CHECK_OUTPUT" | tr '\n' ' ')
        return 1
    }
}

# --- py-spy -------------------------------------------------------------
PY_SPY_DIR=$CACHE/py-spy-$PY_SPY_VERSION
PY_SPY_BIN=""
if fill "$PY_SPY_DIR" "py-spy==$PY_SPY_VERSION" "{}/bin/py-spy" --version -- "py-spy==$PY_SPY_VERSION"; then
    PY_SPY_BIN=$PY_SPY_DIR/bin/py-spy
else
    add_missing py-spy "$FILL_ERROR"
fi

# --- peeka (the Python implementation) --------------------------------------
PEEKA_HOST_DIR=""
PEEKA_TARGET_DIR=""
peeka_line=$(read_interpreters id root argv | awk -F $'\x1f' -v id="$PEEKA_PYTHON_ID" '$1 == id' || true)
if [[ -z $peeka_line ]]; then
    add_missing peeka "Python $PEEKA_PYTHON_ID is not in $PYTHONS_MANIFEST (run scripts/provision-pythons.sh)"
else
    IFS=$'\x1f' read -r id root argv_joined <<<"$peeka_line"
    IFS=$'\x1e' read -r -a PEEKA_ARGV <<<"$argv_joined"
    place "$root" "$CACHE/peeka-$PEEKA_VERSION-$id" "$CHROOT_REFS/peeka-$PEEKA_VERSION"
    PEEKA_HOST_DIR=$PLACED_ON_HOST
    PEEKA_TARGET_DIR=$PLACED_IN_TARGET
    WHEELS=$CACHE/wheels
    mkdir -p "$WHEELS"
    wheel=$(compgen -G "$WHEELS/peeka-$PEEKA_VERSION-*.whl" | head -n 1 || true)
    if [[ -z $wheel ]]; then
        log "building a wheel of peeka $PEEKA_VERSION (published as an sdist only)"
        if ! timeout "$PIP_TIMEOUT" "${PIP[@]}" wheel "${PIP_OPTS[@]}" --no-deps -w "$WHEELS" \
            "peeka==$PEEKA_VERSION" >"$WHEELS/build.log" 2>&1; then
            tail -n 15 "$WHEELS/build.log" >&2 || true
        fi
        wheel=$(compgen -G "$WHEELS/peeka-$PEEKA_VERSION-*.whl" | head -n 1 || true)
    fi
    if [[ -z $wheel ]]; then
        add_missing peeka "could not build a wheel of peeka==$PEEKA_VERSION (see $WHEELS/build.log)"
    else
        # The check runs the interpreter that will run it, with the
        # directory as that interpreter sees it.
        check=("${PEEKA_ARGV[@]}" -I -c "import sys; sys.path.insert(0, '$PEEKA_TARGET_DIR'); import peeka.cli.main, peeka.core.attach; assert peeka.__file__.startswith('$PEEKA_TARGET_DIR/'), peeka.__file__")
        if ! fill "$PEEKA_HOST_DIR" "peeka==$PEEKA_VERSION for $id" "${check[@]}" -- --no-deps "$wheel"; then
            add_missing peeka "$FILL_ERROR"
            PEEKA_HOST_DIR=""
        else
            rm -rf "${PEEKA_HOST_DIR:?}/bin" # console scripts with the installer's shebang
        fi
    fi
fi

# --- the manifest -------------------------------------------------------------
{
    printf 'py_spy\x1f%s\x1f%s\n' "$PY_SPY_VERSION" "$PY_SPY_BIN"
    printf 'peeka\x1f%s\x1f%s\x1f%s\x1f%s\n' "$PEEKA_VERSION" "$PEEKA_PYTHON_ID" "$PEEKA_HOST_DIR" "$PEEKA_TARGET_DIR"
    for item in "${MISSING[@]}"; do
        printf 'missing\x1f%s\n' "$item"
    done
} | "$HOST_PY" -I -c '
import json, os, sys
out = {"schema": 1, "py_spy": None, "peeka": None, "missing": []}
for line in sys.stdin.read().splitlines():
    kind, *f = line.split("\x1f")
    if kind == "py_spy" and f[1]:
        out["py_spy"] = {"version": f[0], "binary": f[1]}
    elif kind == "peeka" and f[2]:
        out["peeka"] = {"version": f[0], "interpreter": f[1], "dir": f[2], "target_dir": f[3]}
    elif kind == "missing":
        out["missing"].append({"what": f[0], "reason": f[1]})
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as fh:
    json.dump(out, fh, indent=2)
    fh.write("\n")
os.replace(tmp, sys.argv[1])
' "$CACHE/references.json"

log "manifest: $CACHE/references.json"
if ((${#MISSING[@]})); then
    log "some references are missing: the bench will skip their cells (and say so)"
    exit 1
fi
