#!/bin/sh
# /data is usually a directory of the host's data storage, created by Docker as root: hand
# it to redis, then run the command as redis (as the official image does).
#
# REDIS_PASSWORD_FILE names a file holding the default user's password (the deployer's
# /run/secrets/...). It becomes an ACL file holding only the password's SHA-256, and
# redis-server gets `--aclfile`: the password is on no command line and in no environment
# (`docker inspect` shows both), and no character of it can change the file's meaning.
#
# In a Sentinel group (REDIS_MASTER_NAME is set), two more commands are understood:
# - `redis-server ...`, a data node, asks the sentinels (REDIS_SENTINELS, "ip:port ...")
#   which node is the primary now and starts as its replica, or as the primary when that
#   is itself (REDIS_SELF, "ip:port"). When no sentinel answers (the group's first start)
#   REDIS_INITIAL_PRIMARY ("ip:port") is the primary. `masterauth` is the password, so a
#   replica, and a primary demoted to one, can authenticate to its primary. A restarted
#   node so never comes back as a primary beside the one the sentinels promoted.
# - `redis-sentinel <config file> ...`, a sentinel. It writes the config file on its
#   first start (`sentinel monitor` REDIS_INITIAL_PRIMARY with REDIS_QUORUM,
#   REDIS_DOWN_AFTER_MS, REDIS_FAILOVER_TIMEOUT_MS) and keeps it afterwards: the sentinel
#   rewrites it with what it learns (the current primary, its peers, the epoch). The
#   password (to the data nodes, to its peers, and its own) comes from an included file
#   written at every start, so a rotated password applies on restart.
# Passwords reach those config files as Redis config strings written byte by byte
# (`"\xHH..."`): no byte of a password can end the string or start a directive.
set -eu

# "$1" as a Redis config string: every byte \xHH, inside double quotes.
config_string() {
  printf '"%s"' "$(printf %s "$1" | od -An -v -tx1 | tr -d ' \n' | sed 's/../\\x&/g')"
}

# "ip:port" of the primary the first sentinel that answers names, else the initial one.
current_primary() {
  for node in ${REDIS_SENTINELS:-}; do
    answer=$(REDISCLI_AUTH="$password" timeout 2 redis-cli --no-auth-warning \
      -h "${node%:*}" -p "${node##*:}" SENTINEL get-master-addr-by-name "$REDIS_MASTER_NAME" \
      2>/dev/null) || continue
    ip=$(printf '%s\n' "$answer" | sed -n 1p)
    port=$(printf '%s\n' "$answer" | sed -n 2p)
    case "$ip:$port" in
      *[!0-9.:]* | :* | *:) continue ;;
    esac
    printf '%s\n' "$ip:$port"
    return
  done
  printf '%s\n' "$REDIS_INITIAL_PRIMARY"
}

if [ "$(id -u)" = 0 ]; then
  chown redis:redis /data
  password=
  if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
    # Exactly the file's bytes: `x` keeps $(...) from eating trailing newlines.
    password=$(cat "$REDIS_PASSWORD_FILE"; printf x)
    password=${password%x}
  fi
  install -d -o redis -g redis -m 0700 /run/redis-acl
  case "${1:-}" in
    redis-server)
      if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
        hash=$(printf %s "$password" | sha256sum | cut -d' ' -f1)
        printf 'user default on #%s ~* &* +@all\n' "$hash" >/run/redis-acl/users.acl
        set -- "$@" --aclfile /run/redis-acl/users.acl
      fi
      if [ -n "${REDIS_MASTER_NAME:-}" ]; then
        primary=$(current_primary)
        {
          if [ -n "$password" ]; then printf 'masterauth %s\n' "$(config_string "$password")"; fi
          if [ "$primary" != "$REDIS_SELF" ]; then
            printf 'replicaof %s %s\n' "${primary%:*}" "${primary##*:}"
          fi
        } >/run/redis-acl/replication.conf
        echo "clusterlab: the primary is $primary, this node is $REDIS_SELF" >&2
        set -- "$@" --include /run/redis-acl/replication.conf
      fi
      ;;
    redis-sentinel)
      conf=${2:?redis-sentinel needs its config file}
      if [ ! -s "$conf" ]; then
        printf 'sentinel monitor %s %s %s %s\n' "$REDIS_MASTER_NAME" \
          "${REDIS_INITIAL_PRIMARY%:*}" "${REDIS_INITIAL_PRIMARY##*:}" "$REDIS_QUORUM" >"$conf.new"
        printf 'sentinel down-after-milliseconds %s %s\n' "$REDIS_MASTER_NAME" "$REDIS_DOWN_AFTER_MS" >>"$conf.new"
        printf 'sentinel failover-timeout %s %s\n' "$REDIS_MASTER_NAME" "$REDIS_FAILOVER_TIMEOUT_MS" >>"$conf.new"
        mv "$conf.new" "$conf"
      fi
      chown redis:redis "$conf"
      if [ -n "$password" ]; then
        quoted=$(config_string "$password")
        {
          printf 'sentinel auth-pass %s %s\n' "$REDIS_MASTER_NAME" "$quoted"
          printf 'sentinel sentinel-pass %s\n' "$quoted"
          printf 'requirepass %s\n' "$quoted"
        } >/run/redis-acl/sentinel.conf
        set -- "$@" --include /run/redis-acl/sentinel.conf
      fi
      ;;
  esac
  chown -R redis:redis /run/redis-acl
  for f in /run/redis-acl/*; do
    if [ -f "$f" ]; then chmod 0600 "$f"; fi
  done
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
