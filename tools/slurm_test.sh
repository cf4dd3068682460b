#!/usr/bin/env bash
# Testing on a Slurm cluster, as mmpretrain's script:
#   [GPUS=8] [GPUS_PER_NODE=8] bash tools/slurm_test.sh PARTITION JOB_NAME \
#       CONFIG CHECKPOINT [test.py args]
# Same variables as tools/slurm_train.sh (tools/slurm_common.sh).
set -e
HERE=$(dirname "$0")
# shellcheck source=tools/slurm_common.sh
source "$HERE/slurm_common.sh"
[ $# -ge 4 ] || slurm_fail "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT" \
    "[test.py args]"

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
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
    "$PYTHON" -u "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm \
    "${@:5}"
