#!/usr/bin/env bash
# Runs every test of the workspace against real services (PostgreSQL, Redis, Docker, sshd,
# terraform, nginx, chromium, k6), installing and starting them first on a fresh host.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace --no-fail-fast
