#!/usr/bin/env bash
# One command on a fresh machine: installs what is missing, checks formatting and lints,
# and runs every test (unit tests, and integration tests that run the real binary on
# real Fashion-MNIST).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Debian packages the tests use: readelf (binutils) and shellcheck (the launch scripts).
apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
  }
}
command -v readelf >/dev/null || apt_install binutils
command -v shellcheck >/dev/null || apt_install shellcheck
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# cargo-nextest (on the CI image) runs the test binaries side by side, so a binary with one
# long test does not leave a core idle; plain `cargo test` where it is missing.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace -- --test-threads=2
fi
