#!/usr/bin/env bash
# The whole test suite, with everything it needs, on a fresh Debian machine that
# has only the Rust toolchain. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkg() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "test.sh: installing $2 (needed for $1)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; fi
  command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is still missing after installing $2" >&2; exit 1; }
}

# Tests start their own redis-server (and, for the Sentinel failover test,
# redis-sentinel) on free ports; they never mock Redis.
need_pkg redis-server redis-server
need_pkg redis-sentinel redis-sentinel
# The docker TLS example's certificate script (tests/docker_config.rs).
need_pkg openssl openssl
# The webhook signature's cross-check against Python's hmac (tests/webhooks.rs).
need_pkg python3 python3
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all --check
cargo clippy --locked --all-targets --all-features -- -D warnings
cargo test --locked --all-targets

# The real-switch tier: a real FreeSWITCH with real SIP calls, in a
# loopback-only network namespace (scripts/real-switch.sh). It runs whenever a
# launcher is there; under CI with ../shared/freeswitch present it must run.
fs=${FSGATE_FREESWITCH:-}
if [ -z "$fs" ] && [ -e ../shared/freeswitch/freeswitch ]; then fs=../shared/freeswitch/freeswitch; fi
if [ -n "$fs" ]; then
  echo "test.sh: the real-switch tier RUNS against $fs"
  FSGATE_FREESWITCH="$fs" scripts/real-switch.sh
else
  echo "test.sh: the real-switch tier did NOT run: no FreeSWITCH launcher (set FSGATE_FREESWITCH; see README)"
fi
