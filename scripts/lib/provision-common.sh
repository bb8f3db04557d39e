# shellcheck shell=bash
# provision-common.sh: what scripts/provision-pythons.sh,
# scripts/provision-servers.sh and scripts/provision-bench-references.sh
# share. Sourced, never run; it defines functions and sets nothing else.
#
# The sourcing script sets, before calling them:
#   PROVISION_NAME    how its messages begin (e.g. provision-servers)
#   usage()           its help, for parse_flags
#   PYTHONS_MANIFEST  the interpreters' manifest, for read_interpreters
#                     and find_host_pip
#   HOST_PY           (find_host_python sets it) for read_interpreters
#   STAMP_NAME        the stamp file's name, for stamp_matches

# log MESSAGE...: one line on stderr, after the script's name.
log() { printf '%s: %s\n' "$PROVISION_NAME" "$*" >&2; }

# parse_flags --OPTION=VARIABLE... -- ARGUMENTS...: sets each VARIABLE to 1
# when its --OPTION is among ARGUMENTS, else to 0. -h or --help shows
# usage() and exits 0; any other argument is a usage error (exit 2).
parse_flags() {
    local specs=() spec
    while [[ $1 != -- ]]; do
        specs+=("$1")
        printf -v "${1#*=}" 0
        shift
    done
    shift
    while (($#)); do
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
        esac
        for spec in "${specs[@]}"; do
            if [[ $1 == "${spec%%=*}" ]]; then
                printf -v "${spec#*=}" 1
                shift
                continue 2
            fi
        done
        echo "$PROVISION_NAME: unknown argument: $1 (see --help)" >&2
        exit 2
    done
}

# take_lock FILE MESSAGE: one provisioning at a time. Holds FILE's lock
# until the script ends (its children inherit the descriptor, so
# stragglers of a killed run hold it too); when another run keeps it for
# 15 minutes, logs MESSAGE and exits 1.
take_lock() {
    exec {PROVISION_LOCK_FD}>"$1"
    if ! flock -w 900 "$PROVISION_LOCK_FD"; then
        log "$2"
        exit 1
    fi
}

# find_host_python: sets HOST_PY to a host python3 that can read and write
# JSON (any 3.x); returns 1 when there is none.
find_host_python() {
    local candidate
    HOST_PY=""
    for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
        if [[ -n $candidate && -x $candidate ]] && "$candidate" -c 'import json' 2>/dev/null; then
            HOST_PY=$candidate
            return 0
        fi
    done
    return 1
}

# read_interpreters FIELD...: one line per interpreter of $PYTHONS_MANIFEST
# (none when there is no manifest), oldest minor first: the FIELDs (id,
# minor, version, root, argv...) separated by \x1f; argv's items are
# separated by \x1e.
read_interpreters() {
    [[ -f $PYTHONS_MANIFEST ]] || return 0
    "$HOST_PY" -I - "$PYTHONS_MANIFEST" "$@" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    manifest = json.load(f)
for p in manifest["interpreters"]:
    print("\x1f".join("\x1e".join(p[k]) if k == "argv" else p[k] for k in sys.argv[2:]))
PY
}

# find_host_pip: sets HOST_PIP (a command: PYTHON -m pip) and
# HOST_PIP_VERSION for the newest host interpreter (root /, no launcher
# prefix) of $PYTHONS_MANIFEST whose pip works; returns 1 when there is
# none. Looks once.
HOST_PIP=()
HOST_PIP_VERSION=""
find_host_pip() {
    ((${#HOST_PIP[@]})) && return 0
    local root argv_joined best=""
    while IFS=$'\x1f' read -r root argv_joined; do
        [[ $root == / ]] || continue
        [[ $argv_joined == *$'\x1e'* ]] && continue # a launcher prefix: not a plain host python
        if "$argv_joined" -m pip --version >/dev/null 2>&1; then
            best=$argv_joined # the manifest lists minors oldest first
        fi
    done < <(read_interpreters root argv)
    [[ -n $best ]] || return 1
    HOST_PIP=("$best" -m pip)
    # shellcheck disable=SC2034 # for the sourcing script
    HOST_PIP_VERSION=$("${HOST_PIP[@]}" --version | awk '{print $2}')
}

# place ROOT HOST_PATH CHROOT_PATH: where a directory for an interpreter
# whose filesystem root is ROOT goes. Sets PLACED_IN_TARGET (the path the
# interpreter sees: HOST_PATH for a host interpreter, else CHROOT_PATH) and
# PLACED_ON_HOST (the same directory as the host sees it).
place() {
    local root=$1
    if [[ $root == / ]]; then
        PLACED_ON_HOST=$2
        PLACED_IN_TARGET=$PLACED_ON_HOST
    else
        PLACED_IN_TARGET=$3
        PLACED_ON_HOST=${root%/}$PLACED_IN_TARGET
    fi
}

# stamp_matches DIR STAMP: whether DIR holds a stamp ($STAMP_NAME) that
# says STAMP.
stamp_matches() {
    [[ -f $1/$STAMP_NAME && $(<"$1/$STAMP_NAME") == "$2" ]]
}

# fresh_dir_beside FINAL: sets FRESH_DIR to a new empty directory next to
# FINAL (.NAME.XXXXXX, mode 0755: readable by targets started as another
# user), to fill and then move_into_place.
fresh_dir_beside() {
    local parent
    parent=$(dirname "$1")
    mkdir -p "$parent"
    FRESH_DIR=$(mktemp -d "$parent/.$(basename "$1").XXXXXX")
    chmod 0755 "$FRESH_DIR"
}

# move_into_place FRESH FINAL: FRESH becomes FINAL, in place of whatever
# FINAL was.
move_into_place() {
    local fresh=$1 final=$2
    if [[ -e $final ]]; then
        mv "$final" "$fresh.old"
    fi
    mv "$fresh" "$final"
    rm -rf "$fresh.old"
}

# warning_banner HEADLINE FOOTER LINE...: the loud warning on stderr, one
# line per LINE between HEADLINE and FOOTER.
warning_banner() {
    local headline=$1 footer=$2 line
    shift 2
    {
        printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
        printf '!! WARNING: %s\n' "$headline"
        for line in "$@"; do
            printf '!!   %s\n' "$line"
        done
        printf '!! %s\n' "$footer"
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
    } >&2
}
