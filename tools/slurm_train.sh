#!/usr/bin/env bash
# Training on a Slurm cluster, as mmpretrain's script:
#   [GPUS=16] [GPUS_PER_NODE=8] bash tools/slurm_train.sh PARTITION JOB_NAME \
#       CONFIG WORK_DIR [train.py args]
# On a CPU partition: [TASKS=4] [TASKS_PER_NODE=2] bash tools/slurm_train.sh ...
# The variables and their defaults (taken from the partition, checked with
# sinfo before srun) are listed in tools/slurm_common.sh; docs/slurm.md.
set -e
HERE=$(dirname "$0")
# shellcheck source=tools/slurm_common.sh
source "$HERE/slurm_common.sh"
[ $# -ge 4 ] || slurm_fail "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR" \
    "[train.py args]"

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
PYTHON=$(slurm_python) || exit 2
slurm_request "$PARTITION"
SRUN_ARGS=${SRUN_ARGS:-""}

set -x
# shellcheck disable=SC2086  # SRUN_REQUEST and SRUN_ARGS are word lists
PYTHONPATH="$HERE/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    $SRUN_REQUEST \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$HERE/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "${@:5}"
