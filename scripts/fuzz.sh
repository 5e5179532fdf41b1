#!/usr/bin/env bash
# HTTP fuzzing of the whole API from its own OpenAPI document, with zero 5xx as the bar.
#
# Starts its own redis-server and the service (release build) on free loopback ports, then:
# 1. hostile traffic (scripts/lib/hostile_traffic.py, Python standard library only): 2,000 junk
#    methods/paths/headers, header floods (150 headers, a 100 kB header) and 500 slow clients
#    beside a timed normal client; prints requests sent, /metrics series, RSS and fds before and
#    after, and fails on a 5xx, new series, a starved client or a slow client left open;
# 2. schemathesis (from PyPI, installed into target/fuzz-venv when missing) against
#    /openapi.json: every documented operation, generated and mutated inputs, the admin token
#    sent so admin routes are fuzzed too.
# Exits non-zero on any failure or crash. Everything runs on 127.0.0.1, bounded in count and time.
# Usage: scripts/fuzz.sh [max-examples-per-operation]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-100}
token=fuzz-token-of-16-bytes-or-more
header_timeout_ms=2000

venv=target/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis
fi
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
cargo build --release --quiet --bin warp-redis-cache

. scripts/lib/harness.sh
workdir=$(mktemp -d)
redis_port=$(free_port)
cleanup() { kill "${app_pid:-}" "${redis_pid:-}" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT
start_redis "$redis_port"

APP__HEADER_READ_TIMEOUT_MS=$header_timeout_ms APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis ADMIN__TOKEN=$token \
  DATABASE__PATH="$workdir/items.sqlite3" RUST_LOG=warn,warp_redis_cache=info \
  target/release/warp-redis-cache 2>"$workdir/service.log" &
app_pid=$!
port=$(wait_for_listening "$workdir/service.log")

python3 scripts/lib/hostile_traffic.py "$port" "$app_pid" "$((header_timeout_ms / 1000))"

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error \
  --header "Authorization: Bearer $token" \
  --max-examples "$examples" \
  --request-timeout 10 \
  --generation-deterministic
status=$?
if grep -q "panicked" "$workdir/service.log"; then
  echo "the service panicked during the fuzz run:" >&2
  grep -A5 panicked "$workdir/service.log" >&2
  exit 1
fi
kill -0 "$app_pid" 2>/dev/null || { echo "the service died during the fuzz run" >&2; exit 1; }
exit "$status"
