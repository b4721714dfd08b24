#!/usr/bin/env bash
# From a fresh checkout: installs what is missing, then runs the server on the
# built-in test source and, where a display exists, a viewer that records.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -d .cache/bun/node_modules/.bin ] && export PATH="$PWD/.cache/bun/node_modules/.bin:$PATH"
port="${LANCAM_PORT:-9999}"
http="${LANCAM_HTTP_PORT:-8080}"
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "demo: no display here, so only the server runs; watch it from another machine with:" >&2
  echo "demo:   bun client.ts <this machine's address> $port 8888" >&2
  echo "demo: or open http://<this machine's address>:$http/ in a browser" >&2
  exec bun server.ts --source test --port "$port" --http "$http"
fi
bun server.ts --source test --port "$port" --http "$http" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM
# Wait for the server to listen rather than sleeping a fixed time.
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
bun client.ts 127.0.0.1 "$port" 0 --out recordings
