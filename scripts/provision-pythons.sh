#!/usr/bin/env bash
# provision-pythons.sh: find or provision the CPython interpreters (3.8 to 3.15)
# that Peeka's integration tests attach to, check each one by running it, and
# write a JSON manifest that the `peeka-testkit` crate reads.
#
# Where the interpreters come from
#   3.8 .. 3.13  found on this machine: pyenv builds first ($PYENV_ROOT,
#                /root/.pyenv, $HOME/.pyenv; shared-library builds preferred),
#                then python3.X on PATH (pyenv shims skipped), /usr/local/bin,
#                /usr/bin. A distribution build at /usr/bin/python3.X that is
#                not the chosen one is recorded as an extra entry
#                "3.X-debian" (Debian's 3.11 is a static layout: symbols in
#                the executable, no libpython).
#   3.14, 3.15   Debian unstable ("sid") binary packages in a debootstrap
#                chroot kept in a cache directory (they need a newer glibc).
#                /proc is mounted inside it; its /tmp is mode 1777.
#
# Manifest (schema 1), default <repo>/target/peeka-pythons.json, or the path in
# $PEEKA_PYTHONS_MANIFEST; written atomically (temp file, then mv):
#
#   {"schema": 1,
#    "generated_at": "2025-01-01T00:00:00Z",          # UTC, RFC 3339
#    "interpreters": [
#      {"id": "3.14",                  # unique; "3.X" is the preferred build of a
#                                      # minor, "3.X-debian" an extra one
#       "minor": "3.14",
#       "version": "3.14.2",           # platform.python_version()
#       "implementation": "CPython",   # platform.python_implementation()
#       "argv": ["/usr/sbin/chroot", "<DIR>", "/usr/bin/python3.14"],
#                                      # how to launch it: a prefix, append
#                                      # interpreter arguments
#       "executable": "/usr/bin/python3.14",
#                                      # sys.executable, as the target sees it
#       "root": "<DIR>",               # the target's filesystem root on the
#                                      # host; "/" when not in a chroot
#       "layout": "static",            # "shared": the symbols are in a mapped
#                                      # libpython; "static": in the executable
#       "libpython": null,             # mapped libpython3.X.so path as the
#                                      # target sees it, or null
#       "py_enable_shared": true,      # sysconfig Py_ENABLE_SHARED; true for
#                                      # Debian's static-layout builds too, so
#                                      # never infer the layout from it
#       "arch": "x86_64"}              # platform.machine()
#    ],
#    "missing": [{"minor": "3.15", "reason": "..."}]}
#
# A path P "as the target sees it" is "<root>/P" on the host.
#
# Environment
#   PEEKA_PYTHONS_MANIFEST  manifest path (default <repo>/target/peeka-pythons.json)
#   PEEKA_CACHE_DIR         cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/peeka);
#                           the chroot is <cache>/sid-root
#   PEEKA_DEBIAN_MIRROR     Debian mirror for debootstrap (default: the first
#                           URIs: line of /etc/apt/sources.list.d/debian.sources)
#   CI=true                 same as --require-all
#
# Exit status: 0 when every minor 3.8..3.15 is provided. When some are missing:
# 1 with --require-all or CI=true, otherwise 0 after a loud warning.
# 2 on usage errors.

set -euo pipefail

readonly SUPPORTED_MINORS=(3.8 3.9 3.10 3.11 3.12 3.13 3.14 3.15)
readonly HOST_MINORS=(3.8 3.9 3.10 3.11 3.12 3.13)
readonly CHROOT_MINORS=(3.14 3.15)
readonly CHROOT_SUITE=sid
readonly CHROOT_PACKAGES=python3.14,python3.15
# Written into the chroot after a successful debootstrap and check; a chroot
# without exactly this content is rebuilt from scratch.
readonly CHROOT_MARKER_NAME=.peeka-sid-root-complete
readonly CHROOT_MARKER_CONTENT="peeka sid-root v1 suite=${CHROOT_SUITE} include=${CHROOT_PACKAGES}"
readonly PROBE_TIMEOUT=60

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PROVISION_NAME=provision-pythons
# shellcheck source-path=SCRIPTDIR source=lib/provision-common.sh
source "$SCRIPT_DIR/lib/provision-common.sh"
CACHE_DIR=${PEEKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peeka}
SID_ROOT=$CACHE_DIR/sid-root
MANIFEST=${PEEKA_PYTHONS_MANIFEST:-$REPO_ROOT/target/peeka-pythons.json}

usage() {
    cat <<EOF
Usage: scripts/provision-pythons.sh [--require-all] [--rebuild-chroot] [--help]

Find CPython 3.8-3.13 on this machine, provision 3.14 and 3.15 in a Debian
sid chroot (cached in $SID_ROOT), check every interpreter by
running it, and write the manifest read by peeka-testkit to
$MANIFEST

Options:
  --require-all     exit 1 if any of 3.8-3.15 is missing (implied by CI=true)
  --rebuild-chroot  discard the cached sid chroot and debootstrap it again
  -h, --help        show this help

Environment: PEEKA_PYTHONS_MANIFEST, PEEKA_CACHE_DIR, XDG_CACHE_HOME,
PEEKA_DEBIAN_MIRROR, CI. The manifest schema is documented at the top of this
script and in testkit/src/lib.rs.
EOF
}

parse_flags --require-all=REQUIRE_ALL --rebuild-chroot=REBUILD_CHROOT -- "$@"
if [[ ${CI:-} == true ]]; then
    REQUIRE_ALL=1
fi

START_SECONDS=$SECONDS

# ---------------------------------------------------------------------------
# JSON output helpers (pure bash: the manifest must be writable before any
# interpreter is known to work).

json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    # Any other control character cannot come from a sane path or version.
    s=${s//[$'\x01'-$'\x1f']/?}
    printf '"%s"' "$s"
}

json_string_or_null() {
    if [[ -z $1 ]]; then
        printf 'null'
    else
        json_string "$1"
    fi
}

json_array() {
    local out="[" sep="" item
    for item in "$@"; do
        out+="$sep$(json_string "$item")"
        sep=", "
    done
    printf '%s]' "$out"
}

# ---------------------------------------------------------------------------
# Probing: run an interpreter and let it describe itself.

# Runs inside the interpreter under test; must stay valid Python 3.8 syntax.
# Prints one line: PEEKA-PROBE, version, implementation, Py_ENABLE_SHARED,
# Py_GIL_DISABLED, mapped libpython (or "-"), sys.executable, machine;
# separated by \x1f.
read -r -d '' PROBE_SCRIPT <<'PY' || true
import platform, sys, sysconfig
lib = "-"
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.rstrip("\n").split(None, 5)
        if len(fields) < 6:
            continue
        path = fields[5]
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        name = path.rsplit("/", 1)[-1]
        if name.startswith("libpython3") and ".so" in name:
            lib = path
            break
values = [
    "PEEKA-PROBE",
    platform.python_version(),
    platform.python_implementation(),
    str(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0),
    str(sysconfig.get_config_var("Py_GIL_DISABLED") or 0),
    lib,
    sys.executable,
    platform.machine(),
]
for value in values:
    if not value or any(c in value for c in "\x1f\n\t"):
        sys.exit("unusable probe value: %r" % (value,))
print("\x1f".join(values))
PY

# probe ROOT ARGV... : on success sets P_VERSION P_IMPL P_SHARED P_FREE_THREADED
# P_LIB P_EXE P_ARCH and returns 0; on failure sets P_ERROR and returns 1.
probe() {
    local root=$1
    shift
    local out rc=0
    out=$(timeout "$PROBE_TIMEOUT" "$@" -I -c "$PROBE_SCRIPT" 2>&1) || rc=$?
    local line
    line=$(grep -a '^PEEKA-PROBE' <<<"$out" | head -n 1 || true)
    if ((rc != 0)) || [[ -z $line ]]; then
        local detail
        detail=$(tail -n 1 <<<"$out" | tr -d '\r')
        if ((rc == 124)); then
            detail="timed out after ${PROBE_TIMEOUT}s"
        fi
        P_ERROR="$(printf '%s ' "$@")failed (exit $rc): ${detail:-no output}"
        return 1
    fi
    IFS=$'\x1f' read -r _ P_VERSION P_IMPL P_SHARED P_FREE_THREADED P_LIB P_EXE P_ARCH <<<"$line"
    [[ $P_LIB == - ]] && P_LIB=""
    # A libpython the target maps must exist at <root>/<path> on the host.
    if [[ -n $P_LIB && ! -e ${root%/}$P_LIB ]]; then
        P_ERROR="$(printf '%s ' "$@")maps $P_LIB, which is not at ${root%/}$P_LIB on the host"
        return 1
    fi
    return 0
}

ENTRIES=()        # JSON objects
MISSING=()        # JSON objects
MISSING_TEXT=()   # "3.X: reason" lines for the final warning
TABLE=()          # \x1f-separated rows for the summary table
PROVIDED=" "      # minors with a "3.X" entry, space-separated
HOST_VALIDATOR=() # argv of a host interpreter that can validate the JSON

# add_entry ID MINOR ROOT ARGV... (uses the P_* values of the last probe)
add_entry() {
    local id=$1 minor=$2 root=$3
    shift 3
    local layout=static
    [[ -n $P_LIB ]] && layout=shared
    # The layout comes from what is mapped, not from Py_ENABLE_SHARED: Debian
    # builds say 1 (they ship a libpython) yet link the executable statically.
    local enable_shared=false
    [[ $P_SHARED == 1 ]] && enable_shared=true
    ENTRIES+=("$(
        printf '{"id": %s, "minor": %s, "version": %s, "implementation": %s, ' \
            "$(json_string "$id")" "$(json_string "$minor")" \
            "$(json_string "$P_VERSION")" "$(json_string "$P_IMPL")"
        printf '"argv": %s, "executable": %s, "root": %s, "layout": %s, ' \
            "$(json_array "$@")" "$(json_string "$P_EXE")" \
            "$(json_string "$root")" "$(json_string "$layout")"
        printf '"libpython": %s, "py_enable_shared": %s, "arch": %s}' \
            "$(json_string_or_null "$P_LIB")" "$enable_shared" "$(json_string "$P_ARCH")"
    )")
    TABLE+=("$id"$'\x1f'"$P_VERSION"$'\x1f'"$layout"$'\x1f'"$root"$'\x1f'"$P_EXE"$'\x1f'"${P_LIB:--}")
    [[ $id == "$minor" ]] && PROVIDED+="$minor "
    if [[ $root == / && ${#HOST_VALIDATOR[@]} -eq 0 ]]; then
        HOST_VALIDATOR=("$@")
    fi
    return 0
}

add_missing() {
    local minor=$1 reason=$2
    MISSING+=("$(printf '{"minor": %s, "reason": %s}' "$(json_string "$minor")" "$(json_string "$reason")")")
    MISSING_TEXT+=("Python $minor: $reason")
    TABLE+=("$minor"$'\x1f'"MISSING"$'\x1f'"-"$'\x1f'"-"$'\x1f'"(see below)"$'\x1f'"-")
    log "MISSING Python $minor: $reason"
}

# probe_matches MINOR ROOT ARGV...: probe, then insist on CPython MINOR.
probe_matches() {
    local minor=$1 root=$2
    shift 2
    probe "$root" "$@" || return 1
    if [[ $P_IMPL != CPython ]]; then
        P_ERROR="$* is $P_IMPL, not CPython"
        return 1
    fi
    if [[ $P_FREE_THREADED != 0 ]]; then
        P_ERROR="$* is a free-threaded build, which Peeka does not target"
        return 1
    fi
    if [[ $P_VERSION != "$minor".* ]]; then
        P_ERROR="$* reports version $P_VERSION, not $minor"
        return 1
    fi
    return 0
}

# ---------------------------------------------------------------------------
# 3.8 .. 3.13 from this machine.

pyenv_roots() {
    local seen=" " r
    for r in "${PYENV_ROOT:-}" /root/.pyenv "${HOME:-/root}/.pyenv"; do
        [[ -n $r && -d $r/versions ]] || continue
        r=$(readlink -f "$r")
        [[ $seen == *" $r "* ]] && continue
        seen+="$r "
        printf '%s\n' "$r"
    done
}

# Candidate executables for MINOR, best first, one per line.
host_candidates() {
    local minor=$1 root dir
    while read -r root; do
        # Highest patch release first; skip virtualenvs (pyenv-virtualenv).
        while read -r dir; do
            [[ -n $dir && ! -L $dir && ! -e $dir/pyvenv.cfg ]] || continue
            [[ -x $dir/bin/python$minor ]] && printf '%s\n' "$dir/bin/python$minor"
        done < <(find "$root/versions" -mindepth 1 -maxdepth 1 -name "$minor*" 2>/dev/null | sort -V -r)
    done < <(pyenv_roots)
    local IFS=:
    for dir in $PATH /usr/local/bin /usr/bin; do
        [[ -n $dir && $dir != */shims ]] || continue
        [[ -x $dir/python$minor ]] && printf '%s\n' "$dir/python$minor"
    done
    return 0
}

provide_host_minor() {
    local minor=$1 cand real seen=" " errors=() chosen="" fallback="" last_ok=""
    while read -r cand; do
        real=$(readlink -f "$cand")
        [[ $seen == *" $real "* ]] && continue
        seen+="$real "
        if probe_matches "$minor" / "$cand"; then
            last_ok=$cand
            if [[ -n $P_LIB ]]; then
                chosen=$cand # a shared build: the preferred kind
                break
            fi
            [[ -z $fallback ]] && fallback=$cand
        else
            errors+=("$P_ERROR")
        fi
    done < <(host_candidates "$minor")
    [[ -z $chosen ]] && chosen=$fallback
    if [[ -z $chosen ]]; then
        if ((${#errors[@]} == 0)); then
            add_missing "$minor" "no python$minor found (looked in ${PYENV_ROOT:+$PYENV_ROOT/versions/*/bin, }/root/.pyenv/versions/*/bin, ${HOME:-/root}/.pyenv/versions/*/bin, PATH (pyenv shims skipped), /usr/local/bin, /usr/bin)"
        else
            local joined
            joined=$(printf '%s; ' "${errors[@]}")
            add_missing "$minor" "no usable python$minor: ${joined%; }"
        fi
        return 0
    fi
    # The P_* values must describe the chosen candidate.
    if [[ $last_ok != "$chosen" ]]; then
        probe_matches "$minor" / "$chosen" || {
            add_missing "$minor" "$P_ERROR"
            return 0
        }
    fi
    add_entry "$minor" "$minor" / "$chosen"
    local chosen_real
    chosen_real=$(readlink -f "$chosen")

    # Debian's own build is a different (static) layout: record it as well.
    local system=/usr/bin/python$minor
    if [[ -x $system && $(readlink -f "$system") != "$chosen_real" ]]; then
        local suffix=system
        [[ -e /etc/debian_version ]] && suffix=debian
        if probe_matches "$minor" / "$system"; then
            add_entry "$minor-$suffix" "$minor" / "$system"
        else
            log "warning: ignoring $system: $P_ERROR"
        fi
    fi
}

# ---------------------------------------------------------------------------
# 3.14 and 3.15 in a Debian sid chroot.

# Unmount everything at or below DIR (deepest first), then delete DIR without
# crossing into any other filesystem.
remove_tree() {
    local dir=$1 mnt
    [[ -n $dir && $dir == /*/* && $(basename "$dir") == sid-root* ]] || {
        log "refusing to remove suspicious path '$dir'"
        return 1
    }
    [[ -e $dir ]] || return 0
    while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$dir"
}

debian_mirror() {
    if [[ -n ${PEEKA_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$PEEKA_DEBIAN_MIRROR"
        return
    fi
    local m=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z $m && -r /etc/apt/sources.list ]]; then
        m=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return 0
    command -v apt-get >/dev/null || {
        log "debootstrap is missing and apt-get is not available to install it"
        return 1
    }
    local apt_log=$CACHE_DIR/apt-get.log
    log "installing debootstrap with apt-get (log: $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    {
        # Update first only when there are no package lists at all; retry
        # after an update when the lists are stale.
        if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
            apt-get update
        fi
        apt-get install -y --no-install-recommends debootstrap ||
            { apt-get update && apt-get install -y --no-install-recommends debootstrap; }
    } >"$apt_log" 2>&1 || tail -n 15 "$apt_log" >&2
    command -v debootstrap >/dev/null
}

# /tmp with mode 1777 and /proc mounted (targets and /proc readers need it).
ensure_chroot_mounts() {
    if ! { install -d -m 1777 "$SID_ROOT/tmp" && chmod 1777 "$SID_ROOT/tmp"; }; then
        CHROOT_ERROR="cannot create $SID_ROOT/tmp with mode 1777"
        return 1
    fi
    mkdir -p "$SID_ROOT/proc"
    if ! mountpoint -q "$SID_ROOT/proc" && ! mount -t proc proc "$SID_ROOT/proc"; then
        CHROOT_ERROR="cannot mount proc at $SID_ROOT/proc (needs root)"
        return 1
    fi
}

CHROOT_ERROR=""
CHROOT_BIN=$(command -v chroot || echo /usr/sbin/chroot)

# Returns 0 with a complete chroot at $SID_ROOT, or 1 with CHROOT_ERROR set.
ensure_sid_root() {
    local marker=$SID_ROOT/$CHROOT_MARKER_NAME
    if ((REBUILD_CHROOT == 0)) && [[ -f $marker && $(<"$marker") == "$CHROOT_MARKER_CONTENT" ]]; then
        ensure_chroot_mounts
        return
    fi
    if ((EUID != 0)); then
        CHROOT_ERROR="debootstrap, mount and chroot need root (run this script as root)"
        return 1
    fi
    if [[ -e $SID_ROOT ]]; then
        log "discarding incomplete or outdated chroot $SID_ROOT"
        remove_tree "$SID_ROOT"
    fi
    if ! ensure_debootstrap; then
        CHROOT_ERROR="debootstrap is not installed and could not be installed with apt-get"
        return 1
    fi
    local mirror log_file
    mirror=$(debian_mirror)
    log_file=$CACHE_DIR/debootstrap.log
    log "debootstrap --variant=minbase --include=$CHROOT_PACKAGES $CHROOT_SUITE $SID_ROOT $mirror (about 30 s; log: $log_file)"
    if ! debootstrap --variant=minbase --include="$CHROOT_PACKAGES" \
        "$CHROOT_SUITE" "$SID_ROOT" "$mirror" >"$log_file" 2>&1; then
        tail -n 15 "$log_file" >&2 || true
        remove_tree "$SID_ROOT" || true
        CHROOT_ERROR="debootstrap of Debian $CHROOT_SUITE from $mirror failed (see $log_file)"
        return 1
    fi
    ensure_chroot_mounts || return 1
    local minor
    for minor in "${CHROOT_MINORS[@]}"; do
        if ! probe_matches "$minor" "$SID_ROOT" "$CHROOT_BIN" "$SID_ROOT" "/usr/bin/python$minor"; then
            remove_tree "$SID_ROOT" || true
            CHROOT_ERROR="the fresh chroot's python$minor does not work: $P_ERROR"
            return 1
        fi
    done
    printf '%s\n' "$CHROOT_MARKER_CONTENT" >"$marker"
    return 0
}

provide_chroot_minors() {
    local minor
    if ! ensure_sid_root; then
        for minor in "${CHROOT_MINORS[@]}"; do
            add_missing "$minor" "$CHROOT_ERROR"
        done
        return 0
    fi
    for minor in "${CHROOT_MINORS[@]}"; do
        if probe_matches "$minor" "$SID_ROOT" "$CHROOT_BIN" "$SID_ROOT" "/usr/bin/python$minor"; then
            add_entry "$minor" "$minor" "$SID_ROOT" "$CHROOT_BIN" "$SID_ROOT" "/usr/bin/python$minor"
        else
            add_missing "$minor" "$P_ERROR (try --rebuild-chroot)"
        fi
    done
}

# ---------------------------------------------------------------------------
# Manifest.

write_manifest() {
    local dir tmp sep="" item
    dir=$(dirname "$MANIFEST")
    mkdir -p "$dir"
    tmp=$(mktemp "$dir/.peeka-pythons.json.XXXXXX")
    # shellcheck disable=SC2064 # expand $tmp now: it is local
    trap "rm -f $(printf '%q' "$tmp")" EXIT
    {
        printf '{\n  "schema": 1,\n  "generated_at": %s,\n  "interpreters": [' \
            "$(json_string "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
        for item in "${ENTRIES[@]}"; do
            printf '%s\n    %s' "$sep" "$item"
            sep=","
        done
        [[ -n $sep ]] && printf '\n  '
        printf '],\n  "missing": ['
        sep=""
        for item in "${MISSING[@]}"; do
            printf '%s\n    %s' "$sep" "$item"
            sep=","
        done
        [[ -n $sep ]] && printf '\n  '
        printf ']\n}\n'
    } >"$tmp"
    if ((${#HOST_VALIDATOR[@]})); then
        "${HOST_VALIDATOR[@]}" -I -c 'import json, sys; json.load(open(sys.argv[1]))' "$tmp" || {
            log "internal error: the manifest is not valid JSON (left at $tmp)"
            trap - EXIT
            exit 3
        }
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$MANIFEST"
    trap - EXIT
}

print_table() {
    local row id version layout root exe lib
    printf '\n%-12s %-9s %-7s %-36s %s\n' ID VERSION LAYOUT ROOT "EXECUTABLE (libpython)"
    for row in "${TABLE[@]}"; do
        IFS=$'\x1f' read -r id version layout root exe lib <<<"$row"
        [[ $lib == - ]] && lib="" || lib=" ($lib)"
        printf '%-12s %-9s %-7s %-36s %s%s\n' "$id" "$version" "$layout" "$root" "$exe" "$lib"
    done
}

main() {
    mkdir -p "$CACHE_DIR"
    # One provisioning at a time per cache (parallel CI jobs share it);
    # stragglers of a killed run (debootstrap and its children) also keep
    # the next run from touching the chroot.
    take_lock "$CACHE_DIR/provision.lock" "another provision-pythons.sh holds $CACHE_DIR/provision.lock"

    local minor
    for minor in "${HOST_MINORS[@]}"; do
        provide_host_minor "$minor"
    done
    provide_chroot_minors
    write_manifest
    print_table

    local absent=()
    for minor in "${SUPPORTED_MINORS[@]}"; do
        [[ $PROVIDED == *" $minor "* ]] || absent+=("$minor")
    done
    printf '\nmanifest: %s (%d interpreters, %d s)\n' "$MANIFEST" "${#ENTRIES[@]}" $((SECONDS - START_SECONDS))
    if ((${#absent[@]} == 0)); then
        printf 'all of Python %s are provided\n' "${SUPPORTED_MINORS[*]}"
        return 0
    fi
    warning_banner "${#absent[@]} of the ${#SUPPORTED_MINORS[@]} supported Python versions are NOT provided:" \
        "Tests that need them will be SKIPPED (or FAIL when CI=true)." "${MISSING_TEXT[@]}"
    if ((REQUIRE_ALL)); then
        return 1
    fi
    return 0
}

main
