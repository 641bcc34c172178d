#!/usr/bin/env bash
# Brings the whole cluster of cluster.yaml up on a fresh Debian 12 host: installs and starts
# what `up` needs (Docker engine, base image, k6 for the VM image; not the tests' services), then runs
# `provisioner up`, which renders, applies terraform, deploys and prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh --up
exec cargo run --quiet --release -p provisioner -- up "$@"
