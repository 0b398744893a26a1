#!/usr/bin/env bash
# The real-switch tier (tests/real_switch.rs): builds it, then runs it inside
# the loopback-only network namespace next to a real FreeSWITCH, which the
# tests start themselves (base configuration + freeswitch-conf/install.sh).
#
#   FSGATE_FREESWITCH    the launcher (default ../shared/freeswitch/freeswitch);
#                        it takes FreeSWITCH's own arguments (-nc -nf -conf …)
#   FSGATE_FREESWITCH_CONF  the base conf to install into (default: conf/ beside it)
#   FSGATE_NETNS_RUNNER  runs a command in a loopback-only namespace
#                        (default: in-netns beside the launcher)
# Extra arguments go to the test binary (a test name filter, --nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."

fs=${FSGATE_FREESWITCH:-../shared/freeswitch/freeswitch}
[ -e "$fs" ] || { echo "real-switch.sh: no FreeSWITCH launcher at $fs (set FSGATE_FREESWITCH)" >&2; exit 1; }
fs=$(realpath "$fs")
runner=${FSGATE_NETNS_RUNNER:-$(dirname "$fs")/in-netns}
[ -e "$runner" ] || { echo "real-switch.sh: no namespace runner at $runner (set FSGATE_NETNS_RUNNER)" >&2; exit 1; }
runner=$(realpath "$runner")
# The shared build's own set-up: the libraries it links, sipp, iproute2 (idempotent).
if [ -x "$(dirname "$fs")/setup" ]; then "$(dirname "$fs")/setup" >/dev/null; fi
command -v redis-server >/dev/null || { echo "real-switch.sh: redis-server missing (scripts/test.sh installs it)" >&2; exit 1; }

# Build outside the namespace: nothing inside it reaches a package registry.
bin=$(cargo test --locked --features real-switch --test real_switch --no-run --message-format=json \
      | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "real_switch":
        print(m["executable"])')
[ -x "$bin" ] || { echo "real-switch.sh: the test binary was not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fsgate-real-switch.XXXXXX")
cleanup() { pkill -KILL -f -- "$work" 2>/dev/null || true; }
trap cleanup EXIT
export FSGATE_FREESWITCH="$fs" FSGATE_NETNS_RUNNER="$runner" FSGATE_REAL_SWITCH_WORK="$work"
# The Docker-conf test runs a second switch in a namespace of its own; it is
# made out here (one made from inside another namespace cannot be entered).
FSGATE_NETNS=fsgate-test-docker "$runner" true
echo "real-switch.sh: FreeSWITCH $fs, logs in $work"
set +e
"$runner" "$bin" --test-threads=1 "$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "real-switch.sh: FAILED (exit $rc); the switch's last log lines ($work/switch/log/freeswitch.log):" >&2
    tail -n 60 "$work/switch/log/freeswitch.log" 2>/dev/null | cut -c1-300 >&2 || true
fi
exit $rc
