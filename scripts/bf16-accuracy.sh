#!/usr/bin/env bash
# bf16 against fp32 on the quickstart pipeline (a train stage and a distill stage), five
# seeds each: final test accuracy per stage, mean ± sample std, and the paired bf16 - fp32
# differences. Finished stages are reused, so a rerun on the same root only prints.
#   bash scripts/bf16-accuracy.sh [RUN_ROOT=runs/bf16-accuracy] [SEEDS=0,1,2,3,4]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
root=${1:-runs/bf16-accuracy}
seeds=${2:-0,1,2,3,4}
for p in fp32 bf16; do
  target/release/rolekd-run pipelines/quickstart.yaml -q --set "seeds=[$seeds]" \
    --set "precision=$p" --run-dir "$root/$p" >/dev/null
done
python3 - "$root" "$seeds" <<'PY'
import json, statistics as st, sys
root, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
def acc(p, stage, seed):
    r = json.load(open(f"{root}/{p}/seed-{seed}/{stage}/result.json"))
    return 100 * r["result"]["summary"]["final_test_acc"]
fmt = lambda xs: f"{st.mean(xs):.2f} ± {st.stdev(xs):.2f}"
print("| stage | fp32 test % | bf16 test % | bf16 - fp32 (paired) |")
print("|---|---|---|---|")
for stage in ["teacher", "student_alone", "student_kd"]:
    f = [acc("fp32", stage, s) for s in seeds]
    b = [acc("bf16", stage, s) for s in seeds]
    d = [y - x for x, y in zip(f, b)]
    print(f"| {stage} | {fmt(f)} | {fmt(b)} | {st.mean(d):+.2f} ± {st.stdev(d):.2f} |")
PY
