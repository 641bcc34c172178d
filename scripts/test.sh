#!/usr/bin/env bash
# Runs every test of the workspace against real services (PostgreSQL, Redis, Docker, sshd,
# terraform, nginx, chromium, k6), installing and starting them first on a fresh host.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh

# What the run leaves on the disk, printed however it ends: the build, the images and the
# test clusters' engine volumes share one disk, and a full disk fails a deploy mid-test.
disk_report() {
  echo "==> disk: $1"
  df -h / | tail -1
  du -sh target 2>/dev/null || true
  docker system df 2>/dev/null || true
}
disk_report "before the build"
trap 'disk_report "at the end"' EXIT
if [[ "${CI:-}" == true ]]; then
  # A fresh clone builds once: incremental caches would only take disk.
  export CARGO_INCREMENTAL=0
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace --no-run --quiet
disk_report "after building the tests"
cargo test --workspace --no-fail-fast
