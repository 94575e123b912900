#!/usr/bin/env bash
# Builds and runs the gateway (`weir serve`) on a Debian machine with Rust,
# installing the build's packages when they are missing. Arguments go to
# `weir serve`: with none, it runs on the embedded defaults.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/packages.sh"
need_build_packages
cd "$root"
exec cargo run --release -p weir-gateway --bin weir -- serve "$@"
