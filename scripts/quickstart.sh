#!/usr/bin/env bash
# One command on a fresh machine: installs what is missing (torch venv, Fashion-MNIST,
# crates), builds rolekd-run and runs pipelines/quickstart.yaml. Extra arguments go to
# rolekd-run (e.g. --fresh, --set stages.teacher.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --bin rolekd-run
exec target/release/rolekd-run pipelines/quickstart.yaml "$@"
