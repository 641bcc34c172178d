#!/bin/sh
# Boots a clusterlab "VM" container: the SSH user with the given key, dockerd, then sshd
# in the foreground (sshd is PID 1's job, so the container lives as long as sshd does).
set -eu

: "${SSH_USER:?SSH_USER must name the login user}"
: "${SSH_PUBKEY:?SSH_PUBKEY must hold the public key text}"

if ! id "$SSH_USER" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$SSH_USER"
fi
usermod -aG docker "$SSH_USER"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$SSH_USER" >"/etc/sudoers.d/90-clusterlab"
chmod 0440 /etc/sudoers.d/90-clusterlab
touch /run/clusterlab-user-ready

# The key given at creation, only on first boot: later keys are rotated in place
# (clusterlab-authorize-key) and must survive a restart of the VM.
home=$(getent passwd "$SSH_USER" | cut -d: -f6)
if [ ! -s "$home/.ssh/authorized_keys" ]; then
  clusterlab-authorize-key
fi

# Host keys are made per container (the image ships none), so each VM has its own
# identity and the per-cluster known_hosts file means something.
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /etc/clusterlab

start_dockerd() {
  rm -f /var/run/docker.pid /var/run/docker.sock
  dockerd --storage-driver="$1" >>/var/log/dockerd.log 2>&1 &
  i=0
  while [ "$i" -lt 30 ]; do
    if docker info >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$!" 2>/dev/null; then
      return 1
    fi
    i=$((i + 1))
    sleep 1
  done
  kill "$!" 2>/dev/null || true
  wait "$!" 2>/dev/null || true
  return 1
}

# overlay2 needs a /var/lib/docker that is not itself on overlayfs (the volume gives
# that); where the kernel still refuses, vfs is slow but always works.
if ! start_dockerd overlay2; then
  echo "dockerd failed with overlay2, falling back to vfs" >&2
  tail -n 5 /var/log/dockerd.log >&2 || true
  start_dockerd vfs || { tail -n 20 /var/log/dockerd.log >&2; exit 1; }
fi

exec /usr/sbin/sshd -D -e
