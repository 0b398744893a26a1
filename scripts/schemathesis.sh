#!/usr/bin/env bash
# API checking with schemathesis: runs `fsgate sim` and `fsgate serve` (memory
# store, generated config on free ports) and lets schemathesis exercise every
# operation of /openapi.json with a tenant's API key. Fails on any failure.
# Not part of scripts/test.sh (it takes minutes). Usage: scripts/schemathesis.sh [extra schemathesis args]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
cargo build -q --bin fsgate
BIN=target/debug/fsgate

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ESL_PORT=$(free_port); HTTP_PORT=$(free_port)
WORK=$(mktemp -d); trap 'kill $SIM_PID $SERVE_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
KEY=schemathesis-key
HASH=$($BIN hash-key "$KEY" | tail -n1 | awk '{print $NF}')
cat > "$WORK/fsgate.toml" <<TOML
[http]
listen = "127.0.0.1:$HTTP_PORT"
[store]
url = "memory://"
[[freeswitch]]
name = "fs1"
address = "127.0.0.1:$ESL_PORT"
password = "ClueCon"
[[tenants]]
id = "acme"
api_keys_sha256 = ["$HASH"]
masked_numbers = ["+15550100001", "+15550100002"]
control_numbers = ["+15550109000"]
trunk = "carrier"
dial_string = "sofia/gateway/\${trunk}/\${number}"
TOML
$BIN sim --listen "127.0.0.1:$ESL_PORT" >"$WORK/sim.log" 2>&1 & SIM_PID=$!
$BIN serve --config "$WORK/fsgate.toml" >"$WORK/serve.log" 2>&1 & SERVE_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.1; done
"$VENV/bin/schemathesis" run "http://127.0.0.1:$HTTP_PORT/openapi.json" \
  --header "X-API-Key: $KEY" "$@" || { echo "--- serve log"; tail -n 50 "$WORK/serve.log"; exit 1; }
