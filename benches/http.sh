#!/usr/bin/env bash
# HTTP load test of `kefu serve` on loopback with wrk.
#
#   bash benches/http.sh            # 10,000 articles, 32 connections, 2 threads, 30 s
#   N=2000 DURATION=10s bash benches/http.sh
#
# Builds the release binary, generates N articles with `cargo bench --bench kb -- generate N DIR`
# (which also writes 100 URL-encoded visitor queries), indexes them with `kefu index`, starts
# `kefu serve` on a free 127.0.0.1 port, runs wrk rotating through the queries against
# /api/v1/kb/search?q=...&limit=10, prints wrk's latency distribution and stops the server.
# Traffic goes to loopback only and the run is bounded by DURATION.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-10000}
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null; then
    apt-get update && apt-get install -y wrk
fi

cargo build --release --bin kefu
WORK=$(mktemp -d /tmp/kefu-http.XXXXXX)
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo bench --bench kb -- generate "$N" "$WORK"
target/release/kefu index --kb "$WORK/kb" --index "$WORK/index"

# Lua script rotating through the generated queries.
{
    echo 'local paths = {'
    while IFS= read -r query; do
        [ -n "$query" ] && echo "  \"/api/v1/kb/search?q=${query}&limit=10\","
    done < "$WORK/queries.txt"
    echo '}'
    cat <<'LUA'
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
LUA
} > "$WORK/queries.lua"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
target/release/kefu serve --kb "$WORK/kb" --index "$WORK/index" --data "$WORK/data" \
    --listen "127.0.0.1:$PORT" > "$WORK/server.log" 2>&1 &
SERVER=$!

# /readyz answers 503 until the index is loaded (/healthz answers at once).
FIRST_PATH="/readyz"
for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT$FIRST_PATH" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "kefu serve exited:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT$FIRST_PATH" > /dev/null

# Every query answered once before load: count failures (wrk only reports them as errors).
FAILED=0
while IFS= read -r path; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path" || true)
    if [ "$code" != "200" ]; then
        FAILED=$((FAILED + 1))
        echo "query failed with status '${code}': $path" >&2
    fi
done < <(sed -n 's/^  "\(.*\)",$/\1/p' "$WORK/queries.lua" || true)
echo "=== http: $N articles, $(grep -c 'api/v1' "$WORK/queries.lua") rotating queries, $FAILED failed before load ==="
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/queries.lua" "http://127.0.0.1:$PORT"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
PANICS=$(grep -c 'panicked' "$WORK/server.log" || true)
echo "server log: $PANICS panic(s)"
grep -m3 'panicked' "$WORK/server.log" || true
