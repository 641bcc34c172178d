#!/usr/bin/env bash
# Brings the whole cluster of cluster.yaml up on a fresh Debian 12 host: installs and starts
# what `up` needs (Docker engine, base image, k6 for the VM image; not the tests' services), then runs
# `provisioner up`, which renders, applies terraform, deploys and prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
# The host's setup (packages, dockerd, the debootstrap base: mostly network and disk) runs
# while cargo compiles the provisioner (CPU): on a fresh machine the two overlap.
setup_log=$(mktemp)
trap 'rm -f "$setup_log"' EXIT
started=$SECONDS
(./scripts/setup-host.sh --up && echo "==> host setup done after $((SECONDS - started)) s") \
  >"$setup_log" 2>&1 &
setup=$!
echo "==> host setup in the background (scripts/setup-host.sh --up); building the provisioner" >&2
./scripts/provisioner.sh --build
if ! wait "$setup"; then
  cat "$setup_log" >&2
  echo "up.sh: scripts/setup-host.sh --up failed (its output is above)" >&2
  exit 1
fi
echo "==> the host setup's output:" >&2
cat "$setup_log" >&2
exec ./scripts/provisioner.sh up "$@"
