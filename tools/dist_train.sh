#!/usr/bin/env bash
# Distributed training with torchrun, as mmpretrain's script:
#   bash tools/dist_train.sh CONFIG NPROC_PER_NODE [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# NCCL on GPUs; gloo when CUDA is absent (afd_mm.utils.dist), no change.
set -e
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE=$(dirname "$0")
PYTHON=${PYTHON:-python}

PYTHONPATH="$HERE/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
