#!/usr/bin/env bash
# Brings the whole cluster of cluster.yaml up on a fresh Debian 12 host: installs and starts
# what the host needs (Docker engine, base image, terraform's helpers), then runs
# `provisioner up`, which renders, applies terraform, deploys and prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh
exec cargo run --quiet --release -p provisioner -- up "$@"
