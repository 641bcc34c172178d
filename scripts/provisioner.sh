#!/usr/bin/env bash
# Runs the provisioner's release build with the arguments exactly as given (`just` recipes
# and up.sh come through here); `--build` only builds it, showing cargo's progress.
#
# The build names the web app's package too, as `up`'s build of the web app names the
# provisioner's (PACKAGES in provisioner/src/cli/context.rs): cargo resolves features for the
# packages a build names, so with the same two names both builds see one resolution and the
# dependencies they share (tokio, hyper, serde, redis, tera...) are compiled once. Measured
# on 2 cores, from empty target directories: 142 s + 180 s with each package alone, 193 s +
# 105 s with both named (572 CPU-s instead of 619).
set -euo pipefail
workspace="$(cd "$(dirname "$0")/.." && pwd)"
build=(cargo build --release --locked --manifest-path "$workspace/Cargo.toml"
  -p provisioner -p webapp --bin provisioner)
if [[ "${1:-}" == --build ]]; then
  exec "${build[@]}"
fi
"${build[@]}" --quiet
exec "${CARGO_TARGET_DIR:-$workspace/target}/release/provisioner" "$@"
