#!/usr/bin/env bash
# Copies what a finished (or partly finished) run directory shows into results/<name>/:
# reports, summaries, metrics, schedules, plots, search logs and stores. Never checkpoints
# or resume states. Then rewrites the report there, so its figures and pictures come from
# the copied files alone.
#   scripts/export-results.sh RUN_DIR results/NAME [LOG_FILE]
set -euo pipefail
src=${1:?run directory}
dst=${2:?destination, e.g. results/study-compression-fashion-mnist}
log=${3:-}
cd "$(dirname "$0")/.."
mkdir -p "$dst"
(cd "$src" && find . -type f \
    ! -path '*/checkpoint/*' ! -path '*/checkpoints/*' ! -path '*/state/*' \
    ! -name '*.safetensors' ! -name '.lock' ! -name '*.tmp*' -print0) |
  while IFS= read -r -d '' f; do
    mkdir -p "$dst/$(dirname "$f")"
    cp "$src/$f" "$dst/$f"
  done
[ -n "$log" ] && cp "$log" "$dst/run.log"
if [ -x target/release/rolekd-run ]; then
  target/release/rolekd-run report "$dst" >/dev/null
fi
echo "exported $src -> $dst"
