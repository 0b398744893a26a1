#!/usr/bin/env bash
# Post-dial delay on the real switch (benches/pdd.rs; BENCHMARKS.md, "Post-dial
# delay on the real switch"): builds the bench and the release `fsgate` binary
# outside the namespace, then runs the bench inside a loopback-only network
# namespace next to a real FreeSWITCH, redis-server, nginx and `fsgate serve`,
# which the bench starts itself. About 4 minutes plus the build.
#
#   FSGATE_FREESWITCH       the launcher (default ../shared/freeswitch/freeswitch)
#   FSGATE_FREESWITCH_CONF  the base conf (default: conf/ beside the launcher)
#   FSGATE_NETNS_RUNNER     runs a command in a loopback-only namespace
#                           (default: in-netns beside the launcher)
#   FSGATE_NETNS            the namespace (default fsgate-bench: not the test
#                           tier's, so that the two never share ports)
#   FSGATE_PDD_CALLS        calls per variant one after another (300)
#   FSGATE_PDD_RATE_CALLS   calls per variant at each fixed rate (300)
#   FSGATE_PDD_MAX_RATE     the highest rising rate tried (600 calls/s)
#   FSGATE_PDD_DAEMON       another `fsgate` binary to measure (a before/after
#                           comparison); default: this build's
#
# Results: stdout, target/bench-pdd/results.md and results.json; the switch's,
# the daemon's and nginx's logs are beside them.
set -euo pipefail
cd "$(dirname "$0")/.."

fs=${FSGATE_FREESWITCH:-../shared/freeswitch/freeswitch}
[ -e "$fs" ] || { echo "bench-pdd.sh: no FreeSWITCH launcher at $fs (set FSGATE_FREESWITCH)" >&2; exit 1; }
fs=$(realpath "$fs")
runner=${FSGATE_NETNS_RUNNER:-$(dirname "$fs")/in-netns}
[ -e "$runner" ] || { echo "bench-pdd.sh: no namespace runner at $runner (set FSGATE_NETNS_RUNNER)" >&2; exit 1; }
runner=$(realpath "$runner")
# The shared build's own set-up: the libraries it links, sipp, iproute2 (idempotent).
if [ -x "$(dirname "$fs")/setup" ]; then "$(dirname "$fs")/setup" >/dev/null; fi
command -v redis-server >/dev/null || { echo "bench-pdd.sh: redis-server missing (scripts/test.sh installs it)" >&2; exit 1; }
if ! command -v nginx >/dev/null; then
    echo "bench-pdd.sh: installing nginx (the static lookup)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null
fi

# Build outside the namespace (the bench profile: release with debug info;
# cargo builds the fsgate binary the bench runs along with it).
bin=$(cargo bench --locked --features real-switch --bench pdd --no-run --message-format=json \
      | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "pdd":
        print(m["executable"])')
[ -x "$bin" ] || { echo "bench-pdd.sh: the bench binary was not built" >&2; exit 1; }

commit=$(git log -1 --format=%h 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src 2>/dev/null)" ]; then
    commit="$commit (working tree with uncommitted changes in src/)"
fi
export FSGATE_FREESWITCH="$fs" FSGATE_PDD_COMMIT="$commit"
export FSGATE_NETNS=${FSGATE_NETNS:-fsgate-bench}
echo "bench-pdd.sh: FreeSWITCH $fs, namespace $FSGATE_NETNS, commit $commit"
exec "$runner" "$bin" --bench
