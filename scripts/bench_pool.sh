#!/usr/bin/env bash
# Measures what one cache GET costs through each way of reaching Redis, side by side in one run:
# bare warp (no Redis), our CacheManager (shared multiplexed connection leased from mobc), a raw
# shared MultiplexedConnection, and a mobc checkout per request. Prints req/s and the ratio to
# bare warp. Usage: scripts/bench_pool.sh [seconds-per-case] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --example pool_bench -q

. scripts/lib/harness.sh
redis_port=$(free_port)
app_port=$(free_port)
trap 'kill ${app_pid:-} ${redis_pid:-} 2>/dev/null || true' EXIT
start_redis "$redis_port"
target/release/examples/pool_bench "redis://127.0.0.1:$redis_port/0" "$app_port" &
app_pid=$!
until curl -sf "http://127.0.0.1:$app_port/bare" >/dev/null; do sleep 0.05; done

cases=(bare manager multiplexed mobc)
declare -A results
for case in "${cases[@]}"; do wrk -t1 -c64 -d1s "http://127.0.0.1:$app_port/$case" >/dev/null; done
for round in $(seq "$rounds"); do
  for case in "${cases[@]}"; do
    rps=$(wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$app_port/$case" | awk '/Requests\/sec/ {print $2}')
    results[$case]="${results[$case]:-} $rps"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bare=$(echo "${results[bare]}" | median)
printf '%-12s %12s %8s   (median of %s rounds of %ss, wrk -t1 -c64)\n' case req/s ratio "$rounds" "$secs"
for case in "${cases[@]}"; do
  m=$(echo "${results[$case]}" | median)
  printf '%-12s %12.0f %8.2f\n' "$case" "$m" "$(echo "$m / $bare" | bc -l)"
done
