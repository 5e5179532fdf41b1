# Shared by the benchmark and fuzz scripts (sourced, not run): free ports, a private
# redis-server, and waiting for the service to announce its port. Never the shared 6379.

# Prints a loopback port that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts a redis-server without persistence on port $1, sets redis_pid, waits for PING.
start_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null &
  redis_pid=$!
  until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.05; done
}

# Waits (up to 10 s) for the service logging to $1 to say "listening on http://HOST:N"; prints N.
wait_for_listening() {
  local port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on http:\/\/.*:\([0-9]*\)$/\1/p' "$1" | head -1)
    [ -n "$port" ] && { echo "$port"; return 0; }
    sleep 0.05
  done
  echo "the service did not start:" >&2
  cat "$1" >&2
  return 1
}
