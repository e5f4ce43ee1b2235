#!/usr/bin/env bash
# Distributed training with torchrun, as MMDetection's:
#   bash tools/dist_train.sh CONFIG N [train.py flags]
# N processes on this machine: one per GPU (NCCL), or, without CUDA, N CPU processes (gloo, CPU
# DDP and SyncBN: uninet_mm/engine/dist.py). Multi-node: run it on every node with the same
# NNODES, MASTER_ADDR (address of node 0) and PORT, and NODE_RANK = 0 .. NNODES-1.
# PYTHON picks the interpreter (default: python).
set -e

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
