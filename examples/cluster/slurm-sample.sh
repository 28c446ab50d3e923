#!/usr/bin/env bash
# One million sprites as a Slurm job array: 16 tasks, each writing its own part of seeds 0-999999 into one folder
# on shared storage. Tasks need no coordination: a seed always makes the same file, and --shard auto reads
# SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT (an array without a step).
#
#   sbatch examples/cluster/slurm-sample.sh
#   dcgan-sample -n 1000000 --missing /shared/sprites/ && echo complete     # after the array has finished
#   sbatch examples/cluster/slurm-sample.sh      # again, if not: each task writes only its missing files
#
#SBATCH --job-name=dcgan-sample
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=01:00:00
#SBATCH --output=dcgan-sample-%A_%a.log
set -euo pipefail

OUT=${OUT:-/shared/sprites}   # a folder every node sees (NFS, Lustre, ...)
# A virtual environment on shared storage with this package installed (pip install . from a checkout).
# shellcheck disable=SC1091
source "${VENV:-$HOME/venvs/dcgan}/bin/activate"

dcgan-sample -n 1000000 --shard auto --threads "${SLURM_CPUS_PER_TASK:-0}" -q "$OUT"
