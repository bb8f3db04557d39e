#!/usr/bin/env bash
# provision-servers.sh: install the real web servers the idle-server tests
# attach to (waitress, gunicorn and flask, from PyPI) for every interpreter
# of the manifest that scripts/provision-pythons.sh wrote, and write a
# second manifest that tells the tests where they are.
#
# Nothing goes into an interpreter's own site-packages: each interpreter gets
# a directory of its own, filled with `pip install --target DIR`, which the
# tests put on PYTHONPATH:
#   host interpreters     <repo>/target/peeka-servers/<id>
#   chroot interpreters   <root>/opt/peeka-servers/<id> (the interpreter sees
#                         /opt/peeka-servers/<id>)
# The installer is the interpreter's own pip when it has one (`python -m
# pip`). Otherwise (the sid chroot's 3.14 and 3.15 have no pip) it is the pip
# of the newest host interpreter of the manifest that has one, installing
# wheels only for the target: --python-version, --implementation cp, --abi,
# --platform manylinux_2_X for the target's glibc, --only-binary=:all:.
# If markupsafe (flask's only compiled dependency) has no wheel for such a
# target, a pure-Python wheel is built from its sdist with the optional C
# extension left out (markupsafe then uses its own pure-Python `_native`
# module) and offered with --find-links.
#
# Versions are pinned (every package of the tree), by minor version: see
# pins() below. A directory is built in a temporary directory next to it
# and renamed into place when complete, with a stamp naming the interpreter
# version and the pins; a re-run keeps a directory whose stamp matches
# (after an import check), so it costs a second or two in all.
#
# Manifest (schema 1), default <repo>/target/peeka-servers.json, or the path
# in $PEEKA_SERVERS_MANIFEST; written atomically:
#
#   {"schema": 1,
#    "generated_at": "2025-01-01T00:00:00Z",
#    "packages": ["flask", "waitress", "gunicorn"],
#    "sites": [
#      {"id": "3.14",                            # an interpreter id of
#                                                # peeka-pythons.json
#       "version": "3.14.2",                     # the interpreter version
#       "dir": "<root>/opt/peeka-servers/3.14",  # on the host
#       "target_dir": "/opt/peeka-servers/3.14", # as the interpreter sees it:
#                                                # put it on PYTHONPATH
#       "installer": "host pip 24.2 (cross-install, wheels only)",
#       "markupsafe": "speedups",                # or "pure-python"
#       "versions": {"flask": "3.1.3", "waitress": "3.0.2", ...}}
#    ],
#    "missing": [{"id": "3.15", "reason": "..."}]}
#
# Environment
#   PEEKA_PYTHONS_MANIFEST  the interpreters' manifest (default
#                           <repo>/target/peeka-pythons.json)
#   PEEKA_SERVERS_MANIFEST  this script's manifest (default
#                           <repo>/target/peeka-servers.json)
#   PEEKA_CACHE_DIR         cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/peeka):
#                           the pure-Python markupsafe wheels, when needed
#   CI=true                 same as --require-all
#
# Exit status: 0 when every interpreter of the manifest got its servers.
# Otherwise 1 with --require-all or CI=true, else 0 after a loud warning.
# 2 on usage errors; 1 when there is no interpreter manifest.

set -euo pipefail

readonly STAMP_NAME=.peeka-servers-stamp
readonly STAMP_VERSION=1
readonly PIP_TIMEOUT=600

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PROVISION_NAME=provision-servers
# shellcheck source-path=SCRIPTDIR source=lib/provision-common.sh
source "$SCRIPT_DIR/lib/provision-common.sh"
PYTHONS_MANIFEST=${PEEKA_PYTHONS_MANIFEST:-$REPO_ROOT/target/peeka-pythons.json}
SERVERS_MANIFEST=${PEEKA_SERVERS_MANIFEST:-$REPO_ROOT/target/peeka-servers.json}
HOST_SITES=$REPO_ROOT/target/peeka-servers
CHROOT_SITES=/opt/peeka-servers
CACHE_DIR=${PEEKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peeka}
WHEELHOUSE=$CACHE_DIR/wheelhouse

usage() {
    cat <<EOF
Usage: scripts/provision-servers.sh [--require-all] [--reinstall] [--help]

Install waitress, gunicorn and flask (pinned, from PyPI) with pip --target
into a directory per interpreter of $PYTHONS_MANIFEST
(never into an interpreter's own site-packages), and write
$SERVERS_MANIFEST,
which peeka-cli/tests/cli_idle_servers.rs reads. Run
scripts/provision-pythons.sh first.

Options:
  --require-all  exit 1 if any interpreter did not get its servers
                 (implied by CI=true)
  --reinstall    discard the installed directories and install again
  -h, --help     show this help

Environment: PEEKA_PYTHONS_MANIFEST, PEEKA_SERVERS_MANIFEST, PEEKA_CACHE_DIR,
CI. The manifest schema is documented at the top of this script.
EOF
}

parse_flags --require-all=REQUIRE_ALL --reinstall=REINSTALL -- "$@"
if [[ ${CI:-} == true ]]; then
    REQUIRE_ALL=1
fi

START_SECONDS=$SECONDS

# The pinned tree for a minor version: the newest releases that support it
# (as pip resolved `flask waitress gunicorn` for that version), every
# dependency included so that a new release upstream changes nothing here.
pins() {
    case $1 in
        3.8)
            echo flask==3.0.3 werkzeug==3.0.6 jinja2==3.1.6 markupsafe==2.1.5 \
                itsdangerous==2.2.0 click==8.1.8 blinker==1.8.2 \
                importlib-metadata==8.5.0 zipp==3.20.2 \
                waitress==3.0.0 gunicorn==23.0.0 packaging==24.2
            ;;
        3.9)
            echo flask==3.1.3 werkzeug==3.1.9 jinja2==3.1.6 markupsafe==3.0.4 \
                itsdangerous==2.2.0 click==8.1.8 blinker==1.9.0 \
                importlib-metadata==8.7.1 zipp==3.23.1 \
                waitress==3.0.2 gunicorn==23.0.0 packaging==24.2
            ;;
        *)
            echo flask==3.1.3 werkzeug==3.1.9 jinja2==3.1.6 markupsafe==3.0.4 \
                itsdangerous==2.2.0 click==8.1.8 blinker==1.9.0 \
                waitress==3.0.2 gunicorn==27.0.1
            ;;
    esac
}

# A host Python to read and write JSON with (any 3.x).
if ! find_host_python; then
    log "no host python3 to read $PYTHONS_MANIFEST with"
    exit 1
fi

if [[ ! -f $PYTHONS_MANIFEST ]]; then
    log "no interpreter manifest at $PYTHONS_MANIFEST: run scripts/provision-pythons.sh first"
    exit 1
fi

# The import check, run by the interpreter under test with the directory as
# it sees it: every package imports from there. Prints one line: "OK",
# markupsafe's kind, then name=version pairs; separated by spaces.
read -r -d '' CHECK_SCRIPT <<'PY' || true
import sys
site = sys.argv[1]
sys.path.insert(0, site)
import flask, waitress, gunicorn, markupsafe, werkzeug, jinja2
try:
    from importlib.metadata import version
except ImportError:
    from importlib_metadata import version
for module in (flask, waitress, gunicorn, markupsafe, werkzeug, jinja2):
    if not module.__file__.startswith(site + "/"):
        sys.exit("%s comes from %s, not from %s" % (module.__name__, module.__file__, site))
try:
    from markupsafe import _speedups
    kind = "speedups"
except ImportError:
    kind = "pure-python"
names = ["flask", "waitress", "gunicorn", "markupsafe", "werkzeug", "jinja2"]
print("OK " + kind + " " + " ".join("%s=%s" % (n, version(n)) for n in names))
PY

# check ARGV_PREFIX... -- DIR_AS_THE_TARGET_SEES_IT: sets CHECK_LINE, or
# CHECK_ERROR and returns 1.
check_site() {
    local argv=()
    while [[ $1 != -- ]]; do
        argv+=("$1")
        shift
    done
    shift
    local out rc=0
    out=$(timeout 120 "${argv[@]}" -I -c "$CHECK_SCRIPT" "$1" 2>&1) || rc=$?
    CHECK_LINE=$(grep -a '^OK ' <<<"$out" | tail -n 1 || true)
    if ((rc != 0)) || [[ -z $CHECK_LINE ]]; then
        CHECK_ERROR="import check failed (exit $rc): $(tail -n 1 <<<"$out")"
        return 1
    fi
}

# A pure-Python wheel of markupsafe VERSION in $WHEELHOUSE, built from the
# sdist with setup.py replaced by a plain setup() (no C extension): markupsafe
# falls back to its pure-Python module when _speedups is absent.
ensure_pure_markupsafe() {
    local version=$1
    compgen -G "$WHEELHOUSE/markupsafe-$version-py3-none-any.whl" >/dev/null && return 0
    local work
    work=$(mktemp -d)
    log "building a pure-Python markupsafe $version wheel (no wheel for the target on PyPI)"
    if ! {
        "${HOST_PIP[@]}" download --quiet --no-deps --no-binary=:all: "markupsafe==$version" -d "$work" &&
            tar -xzf "$work"/markupsafe-*.tar.gz -C "$work" &&
            printf 'from setuptools import setup\n\nsetup()\n' >"$work/markupsafe-$version/setup.py" &&
            mkdir -p "$WHEELHOUSE" &&
            "${HOST_PIP[@]}" wheel --quiet --no-deps -w "$WHEELHOUSE" "$work/markupsafe-$version"
    } >"$work/log" 2>&1; then
        tail -n 5 "$work/log" >&2
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work"
    compgen -G "$WHEELHOUSE/markupsafe-$version-py3-none-any.whl" >/dev/null
}

SITES=()         # id \x1f version \x1f dir \x1f target_dir \x1f installer \x1f check line
MISSING=()       # id \x1f reason
TABLE=()

add_missing() {
    local id=$1 reason=$2
    MISSING+=("$id"$'\x1f'"${reason//[$'\n\x1f']/ }")
    TABLE+=("$id"$'\x1f'"MISSING"$'\x1f'"-"$'\x1f'"see below")
    log "MISSING servers for Python $id: $reason"
}

# add_site ID VERSION HOST_DIR TARGET_DIR INSTALLER (with CHECK_LINE set)
add_site() {
    local id=$1 version=$2 host_dir=$3 target_dir=$4 installer=$5
    local fields
    read -r -a fields <<<"$CHECK_LINE"
    SITES+=("$id"$'\x1f'"$version"$'\x1f'"$host_dir"$'\x1f'"$target_dir"$'\x1f'"$installer"$'\x1f'"$CHECK_LINE")
    TABLE+=("$id"$'\x1f'"${fields[*]:2}"$'\x1f'"${fields[1]}"$'\x1f'"$host_dir")
}

# provide ID MINOR VERSION ROOT ARGV...
provide() {
    local id=$1 minor=$2 version=$3 root=$4
    shift 4
    local argv=("$@")
    place "$root" "$HOST_SITES/$id" "$CHROOT_SITES/$id"
    local host_dir=$PLACED_ON_HOST target_dir=$PLACED_IN_TARGET
    local pinned
    pinned=$(pins "$minor")
    local stamp="peeka-servers v$STAMP_VERSION id=$id version=$version pins=$pinned"

    if ((REINSTALL == 0)) && stamp_matches "$host_dir" "$stamp"; then
        if check_site "${argv[@]}" -- "$target_dir"; then
            add_site "$id" "$version" "$host_dir" "$target_dir" "$(<"$host_dir/.peeka-servers-installer")"
            log "$id: up to date ($host_dir)"
            return 0
        fi
        log "$id: the installed directory fails its check ($CHECK_ERROR): installing again"
    fi

    # Install into a fresh directory next to the final one, then swap.
    local parent
    parent=$(dirname "$host_dir")
    mkdir -p "$parent"
    # Leftovers of a run killed midway (we hold the lock: nobody else's).
    find "$parent" -mindepth 1 -maxdepth 1 -name ".$id.*" -exec rm -rf {} +
    fresh_dir_beside "$host_dir"
    local tmp_host=$FRESH_DIR
    local tmp_target=$tmp_host
    [[ $root == / ]] || tmp_target=$CHROOT_SITES/$(basename "$tmp_host")
    local pip_log=$tmp_host.log
    local installer
    # shellcheck disable=SC2086 # the pins are words
    if timeout 60 "${argv[@]}" -m pip --version >/dev/null 2>&1; then
        installer="own pip $("${argv[@]}" -m pip --version | awk '{print $2}')"
        log "$id: pip install --target $host_dir ($installer)"
        timeout "$PIP_TIMEOUT" "${argv[@]}" -m pip install --disable-pip-version-check \
            --no-input --quiet --no-compile --target "$tmp_target" $pinned >"$pip_log" 2>&1 ||
            { install_failed "$id" "$tmp_host" "$pip_log" "pip install ($installer)"; return 0; }
    else
        if ! find_host_pip; then
            rm -rf "$tmp_host"
            add_missing "$id" "it has no pip, and no host interpreter of $PYTHONS_MANIFEST has one to install wheels for it"
            return 0
        fi
        # pip evaluates environment markers for the host's Python, not the
        # target's; harmless here: every package is pinned and the host pip
        # runs the newest host minor, on the same side of every marker of
        # this tree (python_version < "3.10") as 3.14+.
        installer="host pip $HOST_PIP_VERSION (cross-install, wheels only)"
        local nodot=${minor/./}
        # The target's glibc bounds the manylinux wheels it can load.
        local glibc
        glibc=$("${argv[@]}" -I -c 'import platform; print(platform.libc_ver()[1])' 2>/dev/null || true)
        if [[ ! $glibc =~ ^2\.([0-9]+)$ ]]; then
            rm -rf "$tmp_host"
            add_missing "$id" "cannot read its glibc version (platform.libc_ver() said '$glibc')"
            return 0
        fi
        local arch platforms=() n
        arch=$("${argv[@]}" -I -c 'import platform; print(platform.machine())')
        for ((n = 17; n <= BASH_REMATCH[1]; n++)); do
            platforms+=(--platform "manylinux_2_${n}_$arch")
        done
        platforms+=(--platform "manylinux2014_$arch")
        local cross=(--python-version "$minor" --implementation cp --abi "cp$nodot" --abi abi3
            --abi none "${platforms[@]}" --only-binary=:all:)
        local extra=()
        local markupsafe_pin
        markupsafe_pin=$(tr ' ' '\n' <<<"$pinned" | sed -n 's/^markupsafe==//p')
        local probe_dir
        probe_dir=$(mktemp -d)
        if ! "${HOST_PIP[@]}" download --disable-pip-version-check --quiet --no-deps \
            "${cross[@]}" -d "$probe_dir" "markupsafe==$markupsafe_pin" >/dev/null 2>&1; then
            if ensure_pure_markupsafe "$markupsafe_pin"; then
                extra=(--find-links "$WHEELHOUSE")
            fi
        fi
        rm -rf "$probe_dir"
        log "$id: pip install --target $host_dir ($installer, Python $minor, glibc $glibc)"
        timeout "$PIP_TIMEOUT" "${HOST_PIP[@]}" install --disable-pip-version-check --no-input \
            --quiet --no-compile --target "$tmp_host" "${cross[@]}" "${extra[@]}" $pinned \
            >"$pip_log" 2>&1 ||
            { install_failed "$id" "$tmp_host" "$pip_log" "pip install ($installer)"; return 0; }
    fi
    # Console scripts carry the installer's shebang: the tests run `python -m`.
    rm -rf "${tmp_host:?}/bin"
    if ! check_site "${argv[@]}" -- "$tmp_target"; then
        install_failed "$id" "$tmp_host" "$pip_log" "$CHECK_ERROR"
        return 0
    fi
    printf '%s\n' "$installer" >"$tmp_host/.peeka-servers-installer"
    printf '%s\n' "$stamp" >"$tmp_host/$STAMP_NAME"
    rm -f "$pip_log"
    move_into_place "$tmp_host" "$host_dir"
    check_site "${argv[@]}" -- "$target_dir" || {
        add_missing "$id" "installed, then $CHECK_ERROR"
        return 0
    }
    add_site "$id" "$version" "$host_dir" "$target_dir" "$installer"
}

install_failed() {
    local id=$1 tmp=$2 pip_log=$3 what=$4
    local detail
    detail=$(grep -a -E 'ERROR|error:' "$pip_log" | tail -n 2 | tr '\n' ' ' || true)
    [[ -n $detail ]] || detail=$(tail -n 2 "$pip_log" 2>/dev/null | tr '\n' ' ' || true)
    tail -n 15 "$pip_log" >&2 2>/dev/null || true
    rm -rf "$tmp" "$pip_log"
    add_missing "$id" "$what failed: ${detail:-no output}"
}

write_manifest() {
    local dir tmp
    dir=$(dirname "$SERVERS_MANIFEST")
    mkdir -p "$dir"
    tmp=$(mktemp "$dir/.peeka-servers.json.XXXXXX")
    {
        local item
        for item in "${SITES[@]}"; do
            printf 'site\x1f%s\n' "$item"
        done
        for item in "${MISSING[@]}"; do
            printf 'missing\x1f%s\n' "$item"
        done
    } | "$HOST_PY" -I -c '
import datetime, json, sys
sites, missing = [], []
for line in sys.stdin.read().splitlines():
    kind, *fields = line.split("\x1f")
    if kind == "site":
        id_, version, host_dir, target_dir, installer, check = fields
        words = check.split()
        sites.append({"id": id_, "version": version, "dir": host_dir,
                      "target_dir": target_dir, "installer": installer,
                      "markupsafe": words[1],
                      "versions": dict(w.split("=", 1) for w in words[2:])})
    else:
        missing.append({"id": fields[0], "reason": fields[1]})
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
manifest = {"schema": 1, "generated_at": now,
            "packages": ["flask", "waitress", "gunicorn"],
            "sites": sites, "missing": missing}
with open(sys.argv[1], "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
' "$tmp" || {
        rm -f "$tmp"
        log "internal error: cannot write the manifest"
        exit 3
    }
    chmod 0644 "$tmp"
    mv -f "$tmp" "$SERVERS_MANIFEST"
}

main() {
    mkdir -p "$HOST_SITES"
    take_lock "$HOST_SITES/.lock" "another provision-servers.sh holds $HOST_SITES/.lock"
    local id minor version root argv_joined argv count=0
    while IFS=$'\x1f' read -r id minor version root argv_joined; do
        IFS=$'\x1e' read -r -a argv <<<"$argv_joined"
        provide "$id" "$minor" "$version" "$root" "${argv[@]}"
        count=$((count + 1))
    done < <(read_interpreters id minor version root argv)
    write_manifest

    local row pkgs kind where
    printf '\n%-12s %-12s %s\n' ID MARKUPSAFE "PACKAGES (DIRECTORY)"
    for row in "${TABLE[@]}"; do
        IFS=$'\x1f' read -r id pkgs kind where <<<"$row"
        printf '%-12s %-12s %s (%s)\n' "$id" "$kind" "$pkgs" "$where"
    done
    printf '\nmanifest: %s (%d of %d interpreters, %d s)\n' "$SERVERS_MANIFEST" \
        "${#SITES[@]}" "$count" $((SECONDS - START_SECONDS))
    if ((${#MISSING[@]} == 0)); then
        return 0
    fi
    local line lines=()
    for line in "${MISSING[@]}"; do
        lines+=("Python ${line%%$'\x1f'*}: ${line#*$'\x1f'}")
    done
    warning_banner "waitress/gunicorn/flask are NOT installed for ${#MISSING[@]} interpreter(s):" \
        "The idle-server tests will be SKIPPED for them (or FAIL when CI=true)." "${lines[@]}"
    if ((REQUIRE_ALL)); then
        return 1
    fi
    return 0
}

main
