#!/usr/bin/env bash
# Augmentation throughput, one thread each: rolekd's PBA pipeline vs a Pillow reference of the
# same pipeline, measured in this invocation. Prints images/s and the ratio per image kind.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q -p rolekd-augment --example pipeline_throughput
bin=target/release/examples/pipeline_throughput
printf "%-6s %16s %16s %8s\n" images "rolekd img/s" "Pillow img/s" ratio
for kind in rgb gray; do
  rust=$(taskset -c 0 "$bin" "$kind" 40000 | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
  ref=$(taskset -c 0 "$ROLEKD_VENV/bin/python" bench/pillow_pba_reference.py "$kind" 4000 | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
  python3 -c "print(f'{\"$kind\":<6} {$rust:>16.0f} {$ref:>16.0f} {$rust/$ref:>7.1f}x')"
done
