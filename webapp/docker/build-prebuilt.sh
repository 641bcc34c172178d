#!/usr/bin/env bash
# Builds clusterlab/webapp:latest FROM debian:bookworm-slim with a binary built on this
# host, for machines without a registry. The host must have bookworm's glibc (or older)
# for the binary to run in the image. Usage: build-prebuilt.sh [IMAGE_TAG]
set -euo pipefail

tag=${1:-clusterlab/webapp:latest}
crate_dir=$(cd "$(dirname "$0")/.." && pwd)
workspace=$(cd "$crate_dir/.." && pwd)
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

cargo build --release --quiet -p webapp --manifest-path "$workspace/Cargo.toml"
# A staged context keeps target/ (gigabytes) out of what is sent to the daemon.
cp "$workspace/target/release/webapp" "$context/webapp"
cp "$crate_dir/Rocket.toml" "$context/Rocket.toml"
cp -r "$crate_dir/templates" "$context/templates"
docker build -f "$crate_dir/docker/Dockerfile.prebuilt" -t "$tag" "$context"
