#!/bin/sh
# /data is usually a directory of the host's data storage, created by Docker as root: hand
# it to redis, then run the command as redis (as the official image does).
set -eu

if [ "$(id -u)" = 0 ]; then
  chown redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
