#!/usr/bin/env bash
# nginx as the proxy of scripts/cache_tests.sh, for calibration: the configuration the suite's
# own Docker image tests (docker/nginx/nginx.conf in http-tests/cache-tests: proxy_cache with
# proxy_cache_revalidate on, HTTP/1.1 upstream), on the ports cache_tests.sh hands over.
#   PROXY_CMD=scripts/cache_tests_nginx.sh scripts/cache_tests.sh CHECKOUT
# Runs nginx in the foreground with its files in $WORK_DIR. Reads UPSTREAM, LISTEN, WORK_DIR.
set -euo pipefail
: "${UPSTREAM:?} ${LISTEN:?} ${WORK_DIR:?}"
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
mkdir -p "$WORK_DIR/cache" "$WORK_DIR/tmp" "$WORK_DIR/logs"
cat >"$WORK_DIR/nginx.conf" <<EOF
worker_processes 1;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
pid $WORK_DIR/nginx.pid;
error_log $WORK_DIR/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK_DIR/tmp/body;
    proxy_temp_path $WORK_DIR/tmp/proxy;
    fastcgi_temp_path $WORK_DIR/tmp/fastcgi;
    uwsgi_temp_path $WORK_DIR/tmp/uwsgi;
    scgi_temp_path $WORK_DIR/tmp/scgi;
    proxy_cache_path $WORK_DIR/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;
    server {
        listen $LISTEN;
        location / {
            proxy_pass $UPSTREAM;
            proxy_cache my-cache;
            proxy_cache_revalidate on;
            proxy_http_version 1.1;
        }
    }
}
EOF
exec nginx -p "$WORK_DIR" -c "$WORK_DIR/nginx.conf" -g 'daemon off;'
