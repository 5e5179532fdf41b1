#!/usr/bin/env bash
# Standalone Redis against a 3-master Redis Cluster, on this machine, in one run: the service's
# cached hit and miss path through each (wrk), then redis-benchmark GET/SET against one server
# and against the cluster. Builds release, starts its own redis-servers and services on free
# ports, and prints two tables. Numbers from one machine share its cores between wrk, the
# service and every Redis node: they compare the modes, they do not size a production cluster.
# Usage: scripts/bench_cluster.sh [seconds-per-case] [rounds] [connections]   (defaults: 5 2 64)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-2}
conns=${3:-64}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin warp-redis-cache

. scripts/lib/harness.sh
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

single_port=$(free_port)
start_redis "$single_port"
pids+=("$redis_pid")

cluster_ports=()
for _ in 1 2 3; do
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$(free_port)" \
    --cluster-config-file "$work/nodes-$port.conf" --dir "$work" --save "" --appendonly no \
    --loglevel warning >/dev/null &
  pids+=($!)
  cluster_ports+=("$port")
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
done
redis-cli --cluster create "${cluster_ports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
for port in "${cluster_ports[@]}"; do
  until redis-cli -p "$port" cluster info | grep -q cluster_state:ok; do sleep 0.05; done
done
seeds=$(printf 'redis://127.0.0.1:%s,' "${cluster_ports[@]}")

# Starts the service with extra environment "$@", creates one item and reads it once; sets
# app_port (not in a subshell, so the service's pid reaches cleanup).
start_service() {
  local log="$work/service-${#pids[@]}.log"
  env APP__PORT=0 CACHE__BACKEND=redis DATABASE__PATH=":memory:" \
    RUST_LOG=warn,warp_redis_cache=info,warp_redis_cache::access=warn \
    CACHE__COMPRESSION_THRESHOLD_BYTES=4096 "$@" \
    "${CARGO_TARGET_DIR:-target}/release/warp-redis-cache" >/dev/null 2>"$log" &
  pids+=($!)
  app_port=$(wait_for_listening "$log")
  curl -sf -X POST -H 'content-type: application/json' "http://127.0.0.1:$app_port/items" \
    -d '{"name":"Benchmark lamp","price":12.5,"description":"A steady desk lamp for measuring caches."}' >/dev/null
  curl -sf "http://127.0.0.1:$app_port/items/1" -o /dev/null
}
start_service REDIS__URL="redis://127.0.0.1:$single_port/0"
single_app=$app_port
start_service REDIS__MODE=cluster REDIS__URL="${seeds%,}"
cluster_app=$app_port

cases=(
  "hit, standalone Redis|http://127.0.0.1:$single_app/items/1|"
  "hit, Redis Cluster|http://127.0.0.1:$cluster_app/items/1|"
  "miss path, standalone|http://127.0.0.1:$single_app/items/1|Cache-Control: no-cache"
  "miss path, Redis Cluster|http://127.0.0.1:$cluster_app/items/1|Cache-Control: no-cache"
)
declare -A rps p50 p99
for round in $(seq "$rounds"); do
  for entry in "${cases[@]}"; do
    IFS='|' read -r name url header <<<"$entry"
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency ${header:+-H "$header"} "$url")
    rps[$name]="${rps[$name]:-} $(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p50[$name]="${p50[$name]:-} $(echo "$out" | awk '$1=="50%" {print $2}')"
    p99[$name]="${p99[$name]:-} $(echo "$out" | awk '$1=="99%" {print $2}')"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000} printf "%.2f", v}'; }
echo
echo "service: wrk -t1 -c$conns, ${secs}s per case, $rounds rounds (medians), $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '| %-26s | %9s | %8s | %8s |\n' case req/s p50_ms p99_ms "---" "---" "---" "---"
for entry in "${cases[@]}"; do
  IFS='|' read -r name _ _ <<<"$entry"
  printf '| %-26s | %9.0f | %8s | %8s |\n' "$name" "$(echo "${rps[$name]}" | median)" \
    "$(for v in ${p50[$name]}; do echo "$v" | to_ms; echo; done | median)" \
    "$(for v in ${p99[$name]}; do echo "$v" | to_ms; echo; done | median)"
done

echo
echo "redis-benchmark -c 50 -n 200000 -d 1024, SET and GET, without and with -P 16 (requests/s)"
printf '| %-22s | %9s | %9s | %9s | %9s |\n' target SET GET "SET -P16" "GET -P16" "---" "---" "---" "---" "---"
bench() { redis-benchmark "$@" -c 50 -n 200000 -d 1024 -t get,set -q | tr '\r' '\n' | awk '/requests per second/ {printf " %9.0f |", $2}'; }
printf '| %-22s |' "one server"
bench -p "$single_port"
bench -p "$single_port" -P 16
echo
printf '| %-22s |' "cluster, 3 masters"
bench --cluster -p "${cluster_ports[0]}"
bench --cluster -p "${cluster_ports[0]}" -P 16
echo
