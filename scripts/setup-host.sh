#!/usr/bin/env bash
# Installs and starts what clusterlab needs on a fresh Debian 12 host (idempotent).
#   setup-host.sh          everything the tests need: the Docker engine, PostgreSQL and
#                          Redis, nginx/wrk/chromium for the checks, tmux to drive
#                          `provisioner top`, docker-registry and htpasswd for pull mode,
#                          k6, just and schemathesis
#   setup-host.sh --up     only what `provisioner up` needs (scripts/up.sh): the Docker
#                          engine, ssh, k6 (the VM image carries it)
# Both build the debian:bookworm-slim base image with debootstrap (no container registry
# is needed).
set -euo pipefail

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

UP_PACKAGES=(docker.io openssh-client debootstrap curl ca-certificates iproute2)
TEST_PACKAGES=(docker-compose redis-server redis-tools nginx openssh-server wrk chromium
  chromium-driver postgresql faketime jq openssl tmux docker-registry apache2-utils)
case "${1:-}" in
  --up) PACKAGES=("${UP_PACKAGES[@]}"); TOOLS=(k6:k6) ;;
  "") PACKAGES=("${UP_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
    TOOLS=(k6:k6 just:rust-just schemathesis:schemathesis==4.32.5) ;;
  *) echo "usage: $0 [--up]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in "${TOOLS[@]}"; do
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
  # As slim as Debian's own bookworm-slim: no downloaded packages or package lists (every
  # build runs apt-get update), and dpkg told to skip docs, man pages and translations in
  # what the images install later (copyright files stay), as the official image does.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  tar -C "$root" -c . | docker import - debian:bookworm-slim >/dev/null
  rm -rf "$root"
fi

if [[ "${1:-}" == --up ]]; then
  log "host ready for up"
  exit 0
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
