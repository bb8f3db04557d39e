#!/usr/bin/env bash
# The main job on a fresh machine: start the bundled demo service
# (examples/demo_target.py), attach to it while it runs, show live
# observations with the real `peeka-cli` binary (watch, stack, monitor),
# detach, and check that nothing of Peeka is left in it.
#
#   bash scripts/demo.sh            # human-friendly output
#   FORMAT=jsonl bash scripts/demo.sh   # the JSON Lines scripts consume
#
# PYTHON selects the interpreter of the demo service (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
FORMAT="${FORMAT:-text}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "demo: $PYTHON not found; install CPython 3.8-3.15 or run with PYTHON=/path/to/python3" >&2
    exit 1
fi

echo "== building peeka-cli" >&2
cargo build -q -p peeka-cli
CLI="$PWD/target/debug/peeka-cli"
STATE="$(mktemp -d)"
export XDG_STATE_HOME="$STATE"   # keep the demo's remembered target to itself

"$PYTHON" -u examples/demo_target.py >"$STATE/demo.out" 2>"$STATE/demo.err" &
DEMO=$!
cleanup() {
    kill "$DEMO" 2>/dev/null || true
    rm -rf "$STATE"
}
trap cleanup EXIT
for _ in $(seq 100); do
    grep -q ready "$STATE/demo.out" 2>/dev/null && break
    sleep 0.1
done
grep -q ready "$STATE/demo.out" || { echo "demo: the demo service did not start:" >&2; cat "$STATE/demo.err" >&2; exit 1; }
echo "== demo service running: pid $DEMO ($("$PYTHON" --version 2>&1))" >&2

run() {
    echo >&2
    echo "\$ peeka-cli ${*@Q}" >&2
    "$CLI" --format "$FORMAT" "$@"
}

run attach "$DEMO"
run watch __main__.place_order -n 5 -x 2
run watch __main__.Inventory.reserve -e -n 2
run watch __main__.price -n 3 --condition 'cost > 1'
run stack __main__.price -n 1
run monitor __main__.place_order --interval 1 -c 2
run detach

NSPID=$(awk '/^NSpid:/ {print $NF}' "/proc/$DEMO/status")
if [ -e "/proc/$DEMO/root/tmp/peeka-$NSPID" ]; then
    echo "demo: /tmp/peeka-$NSPID is still there after detach" >&2
    exit 1
fi
if [ -s "$STATE/demo.err" ]; then
    echo "demo: the demo service printed errors:" >&2
    cat "$STATE/demo.err" >&2
    exit 1
fi
echo >&2
echo "== detached: the service kept running and nothing of Peeka is left in it" >&2
