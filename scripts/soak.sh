#!/usr/bin/env bash
# Soak test (not in CI): runs the quick role-wise pipeline once without interruption (the
# reference), then over and over for N minutes, stopping it at random moments (SIGKILL,
# or SIGINT, which saves a train or distill stage inside its epoch) and rerunning until each
# run finishes. Each finished run must be complete (every stage's result, checkpoint or
# schedule, the summary and the report, no temp file where a real one is missing) and
# equal the reference: every train/distill stage's metrics (timing fields aside), every
# search's schedule and its rewards by member and epoch.
#
#   bash scripts/soak.sh [MINUTES=30] [RUN_ROOT=/tmp/rolekd-soak]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
minutes=${1:-30}
root=${2:-/tmp/rolekd-soak}
bin=target/release/rolekd-run
end=$(( $(date +%s) + minutes * 60 ))
# A small budget so one run takes a couple of minutes.
shrink=(--set data.train_size=1200 --set data.test_size=400 --set device=cpu)
for s in teacher_search student_search student_random_search; do
  shrink+=(--set "stages.$s.train_size=400" --set "stages.$s.val_size=300"
           --set "stages.$s.trial.epochs=2" --set "stages.$s.trial.batch_size=64")
done
for s in teacher student student_alone kd_standard kd_teacher_schedule kd_randaugment kd_random_search; do
  shrink+=(--set "stages.$s.epochs=1")
done

check_complete() {
  local dir=$1 missing=0
  for f in pipeline.yaml summary.md report.md; do
    [[ -f $dir/$f ]] || { echo "MISSING $dir/$f"; missing=1; }
  done
  for s in teacher student student_alone kd_standard kd_teacher_schedule kd_randaugment kd_random_search; do
    for f in result.json metrics.jsonl checkpoint/weights.safetensors; do
      [[ -f $dir/$s/$f ]] || { echo "MISSING $dir/$s/$f"; missing=1; }
    done
  done
  for s in teacher_search student_search student_random_search; do
    for f in result.json schedule.json population.sqlite; do
      [[ -f $dir/$s/$f ]] || { echo "MISSING $dir/$s/$f"; missing=1; }
    done
  done
  while IFS= read -r tmp; do
    local name real
    name=$(basename "$tmp"); real="$(dirname "$tmp")/${name#*-}"
    [[ -e $real ]] || { echo "TEMP WITHOUT ITS FILE $tmp"; missing=1; }
  done < <(find "$dir" -name '.tmp*')
  return $missing
}

# Differences between run directory $2 and the reference $1, one line each; none: exit 0.
check_equal() {
  python3 - "$1" "$2" <<'PY'
import json, sys
from pathlib import Path
ref, got = Path(sys.argv[1]), Path(sys.argv[2])
def metrics(d):
    rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l]
    for r in rows:
        for k in ("seconds", "images_per_s", "wall_time"):
            r.pop(k, None)
    return rows
def rewards(d):
    rows = [json.loads(l) for l in (d / "results.jsonl").read_text().splitlines() if l]
    return {(r["member"], r["epoch"]): r["reward"] for r in rows}
bad = 0
for s in ["teacher", "student", "student_alone", "kd_standard", "kd_teacher_schedule",
          "kd_randaugment", "kd_random_search"]:
    if metrics(ref / s) != metrics(got / s):
        print(f"DIFFERENT {got}/{s}/metrics.jsonl"); bad = 1
for s in ["teacher_search", "student_search", "student_random_search"]:
    if (ref / s / "schedule.json").read_bytes() != (got / s / "schedule.json").read_bytes():
        print(f"DIFFERENT {got}/{s}/schedule.json"); bad = 1
    if rewards(ref / s) != rewards(got / s):
        print(f"DIFFERENT {got}/{s}/results.jsonl rewards"); bad = 1
sys.exit(bad)
PY
}

mkdir -p "$root"
ref=$root/reference
if [[ ! -f $ref/summary.md ]]; then
  echo "soak: the uninterrupted reference run"
  "$bin" pipelines/role-wise-quick.yaml --run-dir "$ref" -q "${shrink[@]}" > "$ref.log" 2>&1
fi
runs=0 kills=0 interrupts=0 failures=0
while (( $(date +%s) < end )); do
  dir=$root/run-$runs
  rm -rf "$dir"
  while :; do
    "$bin" pipelines/role-wise-quick.yaml --run-dir "$dir" -q "${shrink[@]}" > "$dir.log" 2>&1 &
    pid=$!
    sleep $(( RANDOM % 15 + 1 ))
    if kill -0 "$pid" 2>/dev/null; then
      if (( RANDOM % 2 )); then
        kill -9 "$pid"; wait "$pid" 2>/dev/null || true
        kills=$((kills + 1))
      else
        kill -INT "$pid"; rc=0; wait "$pid" || rc=$?
        interrupts=$((interrupts + 1))
        # 130: stopped and saved; 0: it finished before the signal was handled.
        if (( rc != 130 && rc != 0 )); then
          echo "run $runs: exit $rc after SIGINT:"; tail -5 "$dir.log"; failures=$((failures + 1)); break
        fi
        (( rc == 0 )) && break
      fi
    elif wait "$pid"; then
      break
    else
      echo "run $runs failed by itself:"; tail -5 "$dir.log"; failures=$((failures + 1)); break
    fi
  done
  if check_complete "$dir" && check_equal "$ref" "$dir"; then
    echo "run $runs complete and equal to the reference ($kills kills, $interrupts interrupts so far)"
  else
    failures=$((failures + 1))
  fi
  runs=$((runs + 1))
done
echo "soak: $runs runs, $kills kills, $interrupts interrupts, $failures failures in $minutes min"
(( failures == 0 ))
