#!/bin/bash
# Workers of the search `search` (run `demo-search`) of pipeline `cluster-demo`, written by
# `rolekd-run launch slurm`. Submit with `sbatch THIS_FILE`; start the pipeline too
# (`rolekd-run PIPELINE`, anywhere): it creates the population, waits, writes the outputs.
# A preempted or requeued task resumes: the member it trained is saved and released on
# SIGTERM, or reclaimed from the store when its lease expires. Published states go where
# the stage's `checkpoints:` says (s3://: export the AWS_* variables before sbatch), else to
# the stage directory, which the nodes then need on a shared file system.
# Each task gets 1 GPU(s) (--gres; Slurm sets CUDA_VISIBLE_DEVICES) and trains on the
# first (--device cuda).
#SBATCH --job-name=rolekd-demo-search
#SBATCH --array=0-3
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --output=rolekd-demo-search-%A_%a.out
#SBATCH --gres=gpu:1
set -euo pipefail
exec rolekd-run worker --store postgres://rolekd@db.example:5432/rolekd --run demo-search --any --device cuda
