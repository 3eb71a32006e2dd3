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
# No import circles between modules, and the plugin-family crates build on rolekd-core
# alone (see the script's header).
python3 scripts/import-graph.py --quiet
# The one-machine build first (no `cluster` feature): lint-clean, none of the cluster
# crates in its tree, and a located error naming the feature for a PostgreSQL store.
cargo clippy --workspace --no-default-features -- -D warnings
if cargo tree -p rolekd --no-default-features -e normal --prefix none |
    grep -qE '^(tokio|postgres|object_store) v'; then
  echo "a --no-default-features build still depends on the cluster crates" >&2
  exit 1
fi
cargo build --no-default-features --bin rolekd-run
laptop=$(mktemp -d)
printf '%s\n' 'name: laptop' 'data: {type: fashion-mnist, train_size: 100, test_size: 100}' \
  'stages:' '  s:' '    kind: search' '    role: teacher' '    store: postgres://u@db:5432/x' \
  '    trial: {model: {type: small-cnn, channels: [4, 8]}, epochs: 2}' > "$laptop/p.yaml"
if target/debug/rolekd-run "$laptop/p.yaml" --run-dir "$laptop/r" > "$laptop/out" 2>&1 ||
    ! grep -q 'p.yaml:7:.*without the `cluster` feature' "$laptop/out"; then
  echo "the one-machine build did not refuse a PostgreSQL store with a located error:" >&2
  cat "$laptop/out" >&2
  exit 1
fi
# ... and trains a small pipeline end to end (a search on its own file-based store too).
printf '%s\n' 'name: laptop' 'seed: 1' 'device: cpu' \
  'data: {type: fashion-mnist, train_size: 600, test_size: 200}' 'stages:' \
  '  s:' '    kind: search' '    role: teacher' '    train_size: 300' '    val_size: 200' \
  '    strategy: {type: pba, population: 2, interval: 1}' \
  '    trial: {model: {type: small-cnn, channels: [4, 8]}, epochs: 2, batch_size: 50}' \
  '  t:' '    kind: train' '    model: {type: small-cnn, channels: [4, 8]}' '    epochs: 1' \
  '    augment: {type: pba-schedule, schedule: "${s.schedule}"}' > "$laptop/small.yaml"
if ! target/debug/rolekd-run "$laptop/small.yaml" --run-dir "$laptop/small" -q > "$laptop/out" 2>&1 ||
    ! grep -q '"final_test_acc"' "$laptop/small/t/result.json"; then
  echo "the one-machine build did not train a small pipeline:" >&2
  cat "$laptop/out" >&2
  exit 1
fi
rm -rf "$laptop"
# The default build (every test below runs it).
cargo clippy --workspace --all-targets -- -D warnings
# cargo-nextest (on the CI image) runs the test binaries side by side, so a binary with one
# long test does not leave a core idle; plain `cargo test` where it is missing.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace -- --test-threads=2
fi
