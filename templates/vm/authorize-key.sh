#!/bin/sh
# Installs $SSH_PUBKEY as the only key of $SSH_USER. The entrypoint runs it at first boot;
# `terraform apply` runs it again (docker exec) when the spec's key changes, so a key is
# rotated in place instead of by replacing the VM.
set -eu

: "${SSH_USER:?SSH_USER must name the login user}"
: "${SSH_PUBKEY:?SSH_PUBKEY must hold the public key text}"

# A rotation may arrive while the entrypoint is still creating the user.
i=0
while [ ! -e /run/clusterlab-user-ready ]; do
  i=$((i + 1))
  [ "$i" -le 60 ] || { echo "the VM never finished creating $SSH_USER" >&2; exit 1; }
  sleep 1
done

home=$(getent passwd "$SSH_USER" | cut -d: -f6)
install -d -m 0700 -o "$SSH_USER" -g "$SSH_USER" "$home/.ssh"
# A file of its own: at first boot the entrypoint and a rotation from terraform may write
# at the same moment, and each must rename only what it wrote.
tmp=$(mktemp "$home/.ssh/authorized_keys.XXXXXX")
printf '%s\n' "$SSH_PUBKEY" >"$tmp"
chown "$SSH_USER:$SSH_USER" "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$home/.ssh/authorized_keys"
