#!/usr/bin/env bash
# record.sh OUT_DIR [SCENARIO...]
#
# Records the Event Socket captures of scenarios.py from a real FreeSWITCH
# into OUT_DIR (normally tests/fixtures/captures): sets up a fresh copy of
# the shared base conf with the project's freeswitch-conf/ and dialplan/
# installed (freeswitch-conf/install.sh), starts the switch in its own
# loopback-only network namespace, runs scenarios.py in the same namespace
# (it starts the route server and the sipp far ends itself), and shuts the
# switch down. Needs root (network namespaces), sipp (Debian's sip-tester)
# and python3; see README.md.
#
#   FSGATE_NETNS  the namespace (default fsgate-capture; never share one with
#                 another running switch: ports 5080, 5090, 8021, 8080 are fixed)
#   FS_DIR        the FreeSWITCH build (default /work/shared/freeswitch)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [SCENARIO...]" >&2; exit 2; }
out=$(cd "$1" && pwd); shift
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fs=${FS_DIR:-/work/shared/freeswitch}
export FSGATE_NETNS=${FSGATE_NETNS:-fsgate-capture}
innetns() { "$fs/in-netns" "$@"; }

conf=$(mktemp -d); run=$(mktemp -d); logs=$(mktemp -d)
cp -r "$fs/conf/." "$conf"
sh "$repo/freeswitch-conf/install.sh" "$conf" >/dev/null
mkdir -p "$run/log" "$run/db" "$run/run"

innetns "$fs/freeswitch" -nc -nonat -nf -conf "$conf" -log "$run/log" -db "$run/db" -run "$run/run" \
    >"$run/stdout" 2>&1 &
fs_pid=$!
stop() {
    innetns "$fs/fs_cli" -x 'fsctl shutdown' >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do kill -0 "$fs_pid" 2>/dev/null || break; sleep 0.5; done
    kill "$fs_pid" 2>/dev/null || true
}
trap stop EXIT

# Ready when the Event Socket answers and the profile is up.
for _ in $(seq 1 60); do
    if innetns "$fs/fs_cli" -x 'sofia status' 2>/dev/null | grep -q 'external.*RUNNING'; then break; fi
    sleep 0.5
done
innetns python3 "$here/scenarios.py" --out "$out" --logs "$logs" "$@"
echo "switch log: $run/log/freeswitch.log; sipp logs and route lookups: $logs"
