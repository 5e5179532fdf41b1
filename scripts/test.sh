#!/usr/bin/env bash
# The project's test command: installs what the tests need when it is missing (as root, with
# apt-get: redis-server; chromium and chromium-driver for the dashboard test; prometheus for
# promtool), checks the alert rules, formatting and lints, and runs every test. Tests start their
# own redis-server (and Redis Cluster) on free loopback ports; they never touch a Redis already
# running on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian packages quietly, and only those whose command is missing: "command package".
# As root with apt-get; otherwise says what to install. `required` ones stop the run when they
# cannot be had; the others only make their tests skip (loudly).
apt_updated=""
install_missing() {
  local required="$1"; shift
  local missing=()
  while [ $# -gt 0 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing with apt-get: ${missing[*]}"
    if [ -z "$apt_updated" ]; then
      apt-get update -qq >/dev/null && apt_updated=1
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null 2>&1; then
      return 0
    fi
  fi
  if [ "$required" = required ]; then
    echo "missing: ${missing[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})," >&2
    echo "or run this script as root to have them installed." >&2
    exit 1
  fi
  echo "WARNING: could not install ${missing[*]}; the tests that need them will say they were skipped." >&2
}

install_missing required redis-server redis-server
# The dashboard's browser test (headless Chromium) and the alert rule checks (promtool).
install_missing optional chromium chromium chromedriver chromium-driver promtool prometheus

# PostgreSQL tests use the local server (see README, Tests): start it when it is installed but
# stopped; without one they say they were skipped.
if [ -z "${WRC_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
  && ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | head -1)
  [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

if command -v promtool >/dev/null 2>&1; then
  promtool check rules deploy/prometheus/alerts.yml
  (cd deploy/prometheus && promtool test rules alerts_test.yml)
else
  echo "WARNING: promtool is missing: SKIPPED checking deploy/prometheus/alerts.yml" >&2
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The library is publishable: manifest fields, README, no path-only dependencies.
cargo package -p warp-redis-cache --locked --no-verify --allow-dirty --quiet
cargo test --workspace --locked
