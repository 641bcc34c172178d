#!/bin/sh
# /data is usually a directory of the host's data storage, created by Docker as root: hand
# it to redis, then run the command as redis (as the official image does).
#
# REDIS_PASSWORD_FILE names a file holding the default user's password (the deployer's
# /run/secrets/...). It becomes an ACL file holding only the password's SHA-256, and
# redis-server gets `--aclfile`: the password is on no command line and in no environment
# (`docker inspect` shows both), and no character of it can change the file's meaning.
set -eu

if [ "$(id -u)" = 0 ]; then
  chown redis:redis /data
  if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ "${1:-}" = redis-server ]; then
    # Exactly the file's bytes: `x` keeps $(...) from eating trailing newlines.
    password=$(cat "$REDIS_PASSWORD_FILE"; printf x)
    hash=$(printf %s "${password%x}" | sha256sum | cut -d' ' -f1)
    install -d -o redis -g redis -m 0700 /run/redis-acl
    printf 'user default on #%s ~* &* +@all\n' "$hash" >/run/redis-acl/users.acl
    chown redis:redis /run/redis-acl/users.acl
    chmod 0600 /run/redis-acl/users.acl
    set -- "$@" --aclfile /run/redis-acl/users.acl
  fi
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
