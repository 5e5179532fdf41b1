#!/usr/bin/env bash
# Memory under many distinct keys: the service with its L1 tier on (bounded by bytes) takes a
# load spread over 100,000 distinct cached URLs for a minute; every 5 s it prints the service's
# RSS, the L1 tier's entries and bytes (from /cache/stats) and Redis's used memory. Bounded
# means the RSS levels off once L1 is full, however many keys pass through it.
# Usage: scripts/bench_memory.sh [seconds] [distinct-keys] [l1-bytes]   (defaults: 60 100000 16 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
keys=${2:-100000}
l1_bytes=${3:-16777216}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release --quiet --bin warp-redis-cache

. scripts/lib/harness.sh
work=$(mktemp -d)
redis_port=$(free_port)
cleanup() { kill "${app_pid:-}" "${redis_pid:-}" "${wrk_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start_redis "$redis_port"

APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis \
  DATABASE__PATH="$work/items.sqlite3" RUST_LOG=warn,warp_redis_cache=info,warp_redis_cache::access=warn \
  CACHE__L1_MAX_BYTES="$l1_bytes" CACHE__L1_TTL_MS=60000 \
  target/release/warp-redis-cache 2>"$work/service.log" &
app_pid=$!
app_port=$(wait_for_listening "$work/service.log")
curl -sf -X POST "http://127.0.0.1:$app_port/items" -H 'content-type: application/json' \
  -d "{\"name\": \"Lamp\", \"price\": 1, \"description\": \"$(printf 'x%.0s' $(seq 900))\"}" >/dev/null

# Each request asks for one of $keys list pages (distinct cache keys), at random.
cat >"$work/spread.lua" <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/items?limit=1&offset=" .. math.random(0, $keys - 1))
end
LUA
wrk -t1 -c32 -d"${secs}s" -s "$work/spread.lua" "http://127.0.0.1:$app_port" >"$work/wrk.out" &
wrk_pid=$!

echo "$keys distinct keys, L1 bound $l1_bytes bytes, ${secs}s, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %5s | %10s | %10s | %12s | %14s |\n' t_s rss_kib l1_entries l1_bytes redis_used_kib
printf '| %5s | %10s | %10s | %12s | %14s |\n' --- --- --- --- ---
start=$(date +%s)
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 5
  kill -0 "$wrk_pid" 2>/dev/null || break
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$app_pid/status")
  stats=$(curl -sf "http://127.0.0.1:$app_port/cache/stats")
  l1_entries=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["l1"]["entries"])')
  l1_held=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["l1"]["bytes"])')
  redis_used=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print int($2/1024)}')
  printf '| %5d | %10d | %10d | %12d | %14d |\n' "$(( $(date +%s) - start ))" "$rss" "$l1_entries" "$l1_held" "$redis_used"
done
wait "$wrk_pid" || true
echo
grep -E 'Requests/sec|requests in' "$work/wrk.out"
echo "peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' "/proc/$app_pid/status")"
