#!/usr/bin/env bash
# Epoch time of training with the full PBA pipeline (2 ops + pad-crop + flip + cutout, on the
# loader's worker threads) vs with no augmentation: same model, data, seed; REPEATS (default
# 3) pairs run alternately in this invocation, the median pair's ratio reported (this VM's
# speed drifts between runs). Target: <= 1.05x.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
genes=$(python3 -c 'print(", ".join("5" if i % 2 == 0 else "6" for i in range(60)))')
model=${MODEL:-"{type: small-cnn, channels: [16, 32]}"}
cat > "$dir/p.yaml" <<YAML
name: aug-overhead
seed: 0
device: cpu
data: {type: fashion-mnist, train_size: ${TRAIN_SIZE:-20000}, test_size: 1000}
stages:
  warmup:            # libtorch's first epoch pays one-off start-up costs: keep them out
    kind: train
    model: $model
    augment: {type: none}
    epochs: 1
    seed: 1
$(for i in $(seq ${REPEATS:-3}); do cat <<STAGES
  none$i:
    kind: train
    model: $model
    augment: {type: none}
    epochs: 1
  pba$i:
    kind: train
    model: $model
    augment: {type: pba, genes: [$genes], cutout: 8}
    epochs: 1
STAGES
done)
YAML
target/release/rolekd-run "$dir/p.yaml" --run-dir "$dir/run" -q > /dev/null
python3 - "$dir/run" "${REPEATS:-3}" <<'PY'
import json, statistics, sys
def ips(stage):
    line = open(f"{sys.argv[1]}/{stage}/metrics.jsonl").read().splitlines()[-1]
    return json.loads(line)["images_per_s"]
pairs = [(ips(f"none{i}"), ips(f"pba{i}")) for i in range(1, int(sys.argv[2]) + 1)]
for none, pba in pairs:
    print(f"no augmentation: {none:8.0f} img/s   PBA pipeline: {pba:8.0f} img/s   ratio {none / pba:.3f}")
ratio = statistics.median(none / pba for none, pba in pairs)
print(f"epoch time ratio (PBA / none): {ratio:.3f}x  (target <= 1.05x)")
PY
