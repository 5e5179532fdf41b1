#!/usr/bin/env bash
# The project's test command: installs redis-server when it is missing (as root, with apt-get),
# then checks formatting and lints and runs every test. Tests start their own redis-server (and
# Redis Cluster) on free loopback ports; they never touch a Redis already running on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is missing: installing it with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing. Install it (Debian/Ubuntu: sudo apt-get install redis-server)," >&2
    echo "or run this script as root to have it installed." >&2
    exit 1
  fi
fi

# PostgreSQL tests use the local server (see README, Tests): start it when it is installed but
# stopped; without one they say they were skipped.
if [ -z "${WRC_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | head -1)
  [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
