#!/usr/bin/env bash
# Redirect throughput of one app instance next to nginx's own `return 302` on this
# machine, in the same run: a release build of the app serves GET /<code> on one port,
# a throwaway nginx answers `return 302` on another, and wrk hits both with the same
# threads, connections and duration. Prints both req/s and the ratio app / nginx.
#
# The app runs with its limiter on (one Redis decision per request, as in the cluster), with a
# limit far above what wrk can send, so every answer is a redirect.
#
# Needs: PostgreSQL (CLUSTERLAB_TEST_DATABASE_URL, superuser), Redis (CLUSTERLAB_TEST_REDIS_URL),
# nginx, wrk, curl, jq, psql.
# Knobs: DURATION (10s), CONNECTIONS (64), THREADS (2), APP_PORT (18080), NGINX_PORT (18081).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
APP_PORT=${APP_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
ADMIN_URL=${CLUSTERLAB_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
REDIS_URL=${CLUSTERLAB_TEST_REDIS_URL:-redis://127.0.0.1:6379}
TARGET=https://example.com/clusterlab-bench

crate_dir=$(cd "$(dirname "$0")/.." && pwd)
workspace=$(cd "$crate_dir/.." && pwd)
work=$(mktemp -d)
db="cl_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
db_url="${ADMIN_URL%/*}/$db"
app_pid=""

cleanup() {
    [[ -n "$app_pid" ]] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
    [[ -f "$work/nginx.pid" ]] && nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    return 1
}

# Prints the Requests/sec figure; refuses a run where any answer was not a redirect.
run_wrk() {
    local url=$1 out
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null # warm-up
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$url")
    if grep -q "Non-2xx or 3xx responses" <<<"$out"; then
        echo "$out" >&2
        echo "wrk saw answers other than redirects from $url" >&2
        return 1
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

echo "building the release binary..." >&2
cargo build --release --quiet -p webapp --manifest-path "$workspace/Cargo.toml"

psql -q "$ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
# Run from the crate directory so Rocket.toml and templates/ are found.
(
    cd "$crate_dir"
    ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=$APP_PORT ROCKET_LOG_LEVEL=off \
        ROCKET_DATABASES="{shortener={url=\"$db_url\"}}" \
        ROCKET_LIMITER="{redis_url=\"$REDIS_URL\", key_prefix=\"$db:\", policies={default={limit=1000000000, window=\"60s\"}}}" \
        exec "$workspace/target/release/webapp"
) &
app_pid=$!
wait_http "http://127.0.0.1:$APP_PORT/readyz"
code=$(curl -fsS -d "url=$TARGET" "http://127.0.0.1:$APP_PORT/shorten" | jq -er .code)

mkdir -p "$work/logs"
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 302 $TARGET; }
    }
}
NGINX
nginx -p "$work" -c "$work/nginx.conf"
wait_http "http://127.0.0.1:$NGINX_PORT/ping"
curl -fsS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/x" | grep -q 302

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores" >&2
app_rps=$(run_wrk "http://127.0.0.1:$APP_PORT/$code")
nginx_rps=$(run_wrk "http://127.0.0.1:$NGINX_PORT/$code")
awk -v app="$app_rps" -v ngx="$nginx_rps" -v c="$CONNECTIONS" -v t="$THREADS" -v d="$DURATION" 'BEGIN {
    printf "wrk -t%s -c%s -d%s\n", t, c, d
    printf "webapp GET /<code> (release, 1 instance): %10.0f req/s\n", app
    printf "nginx return 302:                         %10.0f req/s\n", ngx
    printf "ratio webapp / nginx:                     %10.3f\n", app / ngx
}'
