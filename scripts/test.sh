#!/usr/bin/env bash
# lastgood's test command (README.md, .ci/run): builds every binary first, because the
# integration tests drive the real `lastgood` and the sample app it deploys, then runs
# every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
