#!/usr/bin/env bash
# Instruction counts per request under callgrind (repeatable, unlike timings on a shared box):
# the bare warp baseline, a Redis hit and an L1 hit of the item route and the service shell
# alone (`GET /health/live`), each with the access log off and on (default settings), under
# valgrind while wrk sends requests for a few seconds. Every thread counts, the access log's
# writer included. Prints instructions per request for each, and leaves the callgrind files in
# target/profile/ for `callgrind_annotate --inclusive=yes`.
# Usage: scripts/profile_hit.sh [seconds] [case...]   (default 15 s, every case)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
shift || true
cases=("$@")

for tool in wrk valgrind redis-server; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool/redis-server/redis-server}" >/dev/null; }
done
cargo build --profile profiling --quiet --bin warp-redis-cache --example baseline

. scripts/lib/harness.sh
work=$(mktemp -d)
out=target/profile
mkdir -p "$out"
redis_port=$(free_port)
cleanup() { kill "${app_pid:-}" "${redis_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start_redis "$redis_port"

# Seeds one ~1 KiB item through a plain (unprofiled) instance and saves its body.
APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis \
  DATABASE__PATH="$work/items.sqlite3" CACHE__COMPRESSION_THRESHOLD_BYTES=4096 \
  target/profiling/warp-redis-cache 2>"$work/seed.log" &
app_pid=$!
port=$(wait_for_listening "$work/seed.log")
curl -sf -X POST "http://127.0.0.1:$port/items" -H 'content-type: application/json' \
  -d "{\"name\": \"Benchmark lamp\", \"price\": 12.5, \"description\": \"$(printf 'lamp %.0s' $(seq 190))\"}" >/dev/null
curl -sf "http://127.0.0.1:$port/items/1" -o "$work/body.json"
kill "$app_pid"; wait "$app_pid" 2>/dev/null || true

# profile NAME L1_BYTES ACCESS_LOG(on|off) PATH | baseline
profile() {
  local name=$1 log="$work/$1.log" url requests total filter
  if [ ${#cases[@]} -gt 0 ] && [[ ! " ${cases[*]} " == *" $name "* ]]; then return 0; fi
  rm -f "$out/$name.out"
  if [ "$name" = baseline ]; then
    local base_port; base_port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" \
      target/profiling/examples/baseline "$work/body.json" "$base_port" 2>"$log" &
    app_pid=$!
    url="http://127.0.0.1:$base_port/items/1"
    until curl -sf "$url" -o /dev/null; do sleep 0.2; done
  else
    # Access log on: the default filter (`app.log_level: info`).
    filter=warn,warp_redis_cache=info,warp_redis_cache::access=warn
    [ "$3" = on ] && filter=info
    APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis \
      DATABASE__PATH="$work/items.sqlite3" CACHE__COMPRESSION_THRESHOLD_BYTES=4096 \
      CACHE__L1_MAX_BYTES="$2" CACHE__L1_TTL_MS=60000 RUST_LOG="$filter" \
      valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" \
      target/profiling/warp-redis-cache 2>"$log" &
    app_pid=$!
    url="http://127.0.0.1:$(wait_for_listening "$log")$4"
    for _ in 1 2 3; do curl -sf "$url" -o /dev/null; done
  fi
  callgrind_control --zero "$app_pid" >/dev/null # count the requests only, not the startup
  requests=$(wrk -t1 -c8 -d"${secs}s" "$url" | awk '/requests in/ {print $1}')
  kill -TERM "$app_pid"; wait "$app_pid" 2>/dev/null || true
  total=$(callgrind_annotate "$out/$name.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  printf '| %-20s | %9d | %14d | %10.1f k |\n' "$name" "$requests" "$total" "$(echo "$total / $requests / 1000" | bc -l)"
}
echo "callgrind, wrk -t1 -c8 ${secs}s per case, $(date -u +%Y-%m-%d)"
printf '| %-20s | %9s | %14s | %12s |\n' case requests instructions per_request
printf '| %-20s | %9s | %14s | %12s |\n' --- --- --- ---
profile baseline
profile redis-hit 0 off /items/1
profile redis-hit-log 0 on /items/1
profile l1-hit 67108864 off /items/1
profile l1-hit-log 67108864 on /items/1
profile health-live 0 off /health/live
profile health-live-log 0 on /health/live
