#!/usr/bin/env bash
# Side-by-side benchmark: the service's cached item route against a bare warp route serving the
# same body, on this machine, in one run. Builds release, starts its own redis-server and the
# service on free ports, creates one item with a ~1 KiB JSON body, then runs the cases back to
# back (A B C D, A B C D, ...) and prints req/s, p50, p99, the ratio to bare warp, Redis round
# trips per request (counted with MONITOR over 200 extra requests per case, commands that Lua
# scripts run on the server excluded) and the services' peak RSS. A second instance of the
# service, sharing Redis and the item database, runs with the in-process L1 tier on.
# Usage: scripts/bench.sh [seconds-per-case] [rounds] [connections]   (defaults: 10 3 64)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${3:-64}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release --quiet --bin warp-redis-cache --example baseline

. scripts/lib/harness.sh
work=$(mktemp -d)
redis_port=$(free_port)
base_port=$(free_port)
cleanup() { kill "${app_pid:-}" "${l1_pid:-}" "${base_pid:-}" "${redis_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start_redis "$redis_port"

APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis \
  DATABASE__PATH="$work/items.sqlite3" RUST_LOG=warn,warp_redis_cache=info,warp_redis_cache::access=warn \
  CACHE__COMPRESSION_THRESHOLD_BYTES=4096 target/release/warp-redis-cache 2>"$work/service.log" &
app_pid=$!
app_port=$(wait_for_listening "$work/service.log")

python3 - "$app_port" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
item = {"name": "Benchmark lamp", "price": 12.5, "tags": ["bench", "lamp"],
        "description": "A steady desk lamp for measuring caches. " * 21}
request = urllib.request.Request(f"http://127.0.0.1:{port}/items", data=json.dumps(item).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
urllib.request.urlopen(request).read()
PY
curl -sf "http://127.0.0.1:$app_port/items/1" -o "$work/body.json"
curl -sf "http://127.0.0.1:$app_port/items/1" -o /dev/null
APP__PORT=0 REDIS__URL="redis://127.0.0.1:$redis_port/0" CACHE__BACKEND=redis \
  DATABASE__PATH="$work/items.sqlite3" RUST_LOG=warn,warp_redis_cache=info,warp_redis_cache::access=warn \
  CACHE__COMPRESSION_THRESHOLD_BYTES=4096 CACHE__L1_MAX_BYTES=67108864 CACHE__L1_TTL_MS=1000 \
  target/release/warp-redis-cache 2>"$work/service-l1.log" &
l1_pid=$!
l1_port=$(wait_for_listening "$work/service-l1.log")
until curl -sf -D - "http://127.0.0.1:$l1_port/items/1" -o /dev/null | grep -q 'detail=l1'; do sleep 0.05; done
target/release/examples/baseline "$work/body.json" "$base_port" &
base_pid=$!
until curl -sf "http://127.0.0.1:$base_port/items/1" >/dev/null; do sleep 0.05; done
body_bytes=$(wc -c < "$work/body.json")

# case name | URL | extra wrk header
cases=(
  "bare warp (baseline)|http://127.0.0.1:$base_port/items/1|"
  "cached hit (Redis)|http://127.0.0.1:$app_port/items/1|"
  "cached hit (L1)|http://127.0.0.1:$l1_port/items/1|"
  "service shell (/health/live)|http://127.0.0.1:$app_port/health/live|"
  "uncached origin (SQLite)|http://127.0.0.1:$app_port/items/1|Cache-Control: no-store"
  "miss path (origin + store)|http://127.0.0.1:$app_port/items/1|Cache-Control: no-cache"
)
# Round trips per request: MONITOR lists client commands and, tagged "lua", what scripts run.
round_trips() {
  local url=$1 header=$2 sample=200
  redis-cli -p "$redis_port" monitor >"$work/monitor" &
  local monitor_pid=$!
  until grep -q '^OK' "$work/monitor" 2>/dev/null; do sleep 0.02; done
  for _ in $(seq "$sample"); do curl -sf ${header:+-H "$header"} "$url" -o /dev/null; done
  redis-cli -p "$redis_port" echo round-trips-done >/dev/null
  until grep -q 'round-trips-done' "$work/monitor"; do sleep 0.02; done
  kill "$monitor_pid"; wait "$monitor_pid" 2>/dev/null || true
  local count
  count=$(grep -v '^OK' "$work/monitor" | grep -v 'lua\]' | grep -v -c 'round-trips-done' || true)
  awk -v c="$count" -v n="$sample" 'BEGIN {printf "%.3f", c / n}'
}
declare -A rps p50 p99 cpr
run_case() {
  local name=$1 url=$2 header=$3 out
  if [ -n "$header" ]; then
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "$header" "$url")
  else
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  fi
  rps[$name]="${rps[$name]:-} $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50[$name]="${p50[$name]:-} $(echo "$out" | awk '$1=="50%" {print $2}')"
  p99[$name]="${p99[$name]:-} $(echo "$out" | awk '$1=="99%" {print $2}')"
}
for entry in "${cases[@]}"; do IFS='|' read -r name url header <<<"$entry"; wrk -t1 -c"$conns" -d1s ${header:+-H "$header"} "$url" >/dev/null; done
for round in $(seq "$rounds"); do
  for entry in "${cases[@]}"; do
    IFS='|' read -r name url header <<<"$entry"
    run_case "$name" "$url" "$header"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000} printf "%.2f", v}'; }
for entry in "${cases[@]}"; do
  IFS='|' read -r name url header <<<"$entry"
  cpr[$name]=$(round_trips "$url" "$header")
done
baseline=$(echo "${rps[bare warp (baseline)]}" | median)
peak_rss=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$app_pid/status")
peak_rss_l1=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$l1_pid/status")
echo
echo "wrk -t1 -c$conns, ${secs}s per case, $rounds rounds (medians), body $body_bytes bytes, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %-28s | %9s | %8s | %8s | %8s | %12s |\n' case req/s p50_ms p99_ms ratio round_trips
printf '| %-28s | %9s | %8s | %8s | %8s | %12s |\n' "---" "---" "---" "---" "---" "---"
for entry in "${cases[@]}"; do
  IFS='|' read -r name _ _ <<<"$entry"
  r=$(echo "${rps[$name]}" | median)
  printf '| %-28s | %9.0f | %8s | %8s | %8.2f | %12s |\n' "$name" "$r" \
    "$(for v in ${p50[$name]}; do echo "$v" | to_ms; echo; done | median)" \
    "$(for v in ${p99[$name]}; do echo "$v" | to_ms; echo; done | median)" \
    "$(echo "$r / $baseline" | bc -l)" "${cpr[$name]}"
done
echo "service peak RSS: $peak_rss; with L1: $peak_rss_l1"
