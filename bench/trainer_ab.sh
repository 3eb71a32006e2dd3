#!/usr/bin/env bash
# Before/after check for trainer changes: the suite's training rows (a small CNN trained
# alone, row 1; the same CNN distilled from a ResNet-20, row 2) run by two rolekd-run
# binaries, interleaved within each round; prints each side's best images/s and the ratio.
#   bash bench/trainer_ab.sh BEFORE_BINARY [AFTER_BINARY]   (TRAIN_SIZE, REPEATS as suite.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
before=${1:?usage: bench/trainer_ab.sh BEFORE_BINARY [AFTER_BINARY]}
after=${2:-target/release/rolekd-run}
n=${TRAIN_SIZE:-10000}
reps=${REPEATS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/ab.yaml" <<YAML
name: bench-ab
seed: 0
device: cpu
data: {type: fashion-mnist, train_size: $n, test_size: 1000}
x-opt: &opt {type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005}
stages:
  small_cnn: {kind: train, model: {type: small-cnn, channels: [16, 32]}, epochs: 1, optimizer: *opt, workers: 1}
  resnet20: {kind: train, model: {type: resnet-cifar, depth: 20, width: 16}, epochs: 1, optimizer: *opt, workers: 1}
  distill: {kind: distill, teacher: "\${resnet20.checkpoint}", model: {type: small-cnn, channels: [16, 32]}, epochs: 1, optimizer: *opt, workers: 1}
YAML
ips() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['images_per_s'])" "$1"; }
declare -A all
for i in $(seq "$reps"); do
  for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    "$bin" "$work/ab.yaml" --run-dir "$work/$side$i" -q > /dev/null
    for stage in small_cnn distill; do
      all[$side.$stage]+=" $(ips "$work/$side$i/$stage/metrics.jsonl")"
    done
  done
done
for stage in small_cnn distill; do
  python3 - "$stage" ${all[before.$stage]} -- ${all[after.$stage]} <<'PY'
import sys
stage = sys.argv[1]
args = sys.argv[2:]
cut = args.index("--")
b = max(map(float, args[:cut])); a = max(map(float, args[cut + 1:]))
print(f"{stage:10s} before {b:8.0f} img/s  after {a:8.0f} img/s  after/before {a / b:.3f}")
PY
done
