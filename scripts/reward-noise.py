#!/usr/bin/env python3
"""Reward noise of a search, read from its results.jsonl (one row per member and epoch).

Prints, per search stage folder given:
- jitter: the std of a member's reward change between consecutive epochs in the last half
  of the search, divided by sqrt(2) (the noise of one epoch's reward around its trend),
  leaving out changes across a decision point (an exploit swaps weights there);
- window: that jitter divided by sqrt(reward_window) (the noise of the ranked figure when
  epochs are independent);
- sampling: the binomial standard error of one reward, sqrt(p (1 - p) / n), n = the
  reward set's size (from the stage's config.yaml, or --val N);
- margin: the best final reward minus the second best, in points and in images.
All in points of accuracy. Usage: reward-noise.py STAGE_DIR... [--val N]
"""
import json
import math
import re
import statistics
import sys


def config_ints(stage_dir):
    text = open(f"{stage_dir}/config.yaml").read()
    out = {}
    for key in ("interval", "burn_in", "reward_window", "val_size", "epochs"):
        m = re.search(rf"\b{key}: (\d+)", text)
        if m:
            out[key] = int(m.group(1))
    out["reward_on_validation"] = "reward_on: validation" in text
    return out


def noise(stage_dir, val_override):
    cfg = config_ints(stage_dir)
    rows = [json.loads(line) for line in open(f"{stage_dir}/results.jsonl")]
    latest = {}
    for r in rows:  # a resumed member may report an epoch twice: the latest counts
        latest[(r["member"], r["epoch"])] = r["reward"]
    last = max(e for _, e in latest)
    interval = cfg.get("interval", 3)
    decisions = {e for e in range(1, last + 1) if e % interval == 0 and e >= cfg.get("burn_in", 0)}
    diffs = []
    for (m, e), r in latest.items():
        prev = latest.get((m, e - 1))
        if prev is None or e <= last // 2 or (e - 1) in decisions:
            continue
        diffs.append((r - prev) * 100)
    jitter = statistics.stdev(diffs) / math.sqrt(2) if len(diffs) > 1 else float("nan")
    final = sorted((r for (m, e), r in latest.items() if e == last), reverse=True)
    n = val_override or cfg.get("val_size") or 5000
    p = final[0]
    sampling = math.sqrt(p * (1 - p) / n) * 100
    window = cfg.get("reward_window", 1)
    return {
        "stage": stage_dir,
        "reward_set": n,
        "jitter": round(jitter, 2),
        "window": window,
        "jitter_windowed": round(jitter / math.sqrt(window), 2),
        "sampling": round(sampling, 2),
        "margin_points": round((final[0] - final[1]) * 100, 2),
        "margin_images": round((final[0] - final[1]) * n),
    }


def main(argv):
    val = None
    if "--val" in argv:
        i = argv.index("--val")
        val = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    for d in argv:
        print(json.dumps(noise(d.rstrip("/"), val)))


if __name__ == "__main__":
    main(sys.argv[1:])
