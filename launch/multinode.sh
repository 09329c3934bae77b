#!/usr/bin/env bash
# One node's share of a multi-node bench.train job: launch.run (flags checked first), then torchrun
# with the c10d rendezvous.
# Run the same command on every node (or let launch/slurm.sbatch do it); the nodes find each other
# through the rendezvous on RDZV_HOST:RDZV_PORT, and torchrun numbers the ranks.
#
#   NNODES=2 NPROC_PER_NODE=8 RDZV_HOST=node0 RDZV_ID=job42 launch/multinode.sh --variant sync --out runs
#
# Environment (required: NNODES, RDZV_HOST):
#   NNODES          number of nodes that must join before training starts
#   NPROC_PER_NODE  ranks on this node (default 1; usually the number of GPUs)
#   RDZV_HOST       host of the rendezvous store: any one node, the same on every node
#   RDZV_PORT       its port (default 29500)
#   RDZV_ID         job id, the same on every node (default bnbench)
#   LOCAL_ADDR      this node's address as peers should reach it (default: torchrun resolves the host name)
#   PYTHON          interpreter (default: the repository's .venv, else python3; launch/python.sh)
#   MODULE          what the ranks run: bench.train (default), bench.collectives or bench.timing
# Everything after the script name goes to MODULE. The exit code is bench.train's (75: interrupted,
# resumable; see docs/reliability.md).
set -euo pipefail
: "${NNODES:?set NNODES (number of nodes)}"
: "${RDZV_HOST:?set RDZV_HOST (host of the rendezvous, the same on every node)}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
launcher=launch/multinode.sh
. "$repo/launch/python.sh"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
# launch.run checks the flags for the whole world, then starts torchrun with the c10d rendezvous.
args=(--nnodes "$NNODES" --nproc "${NPROC_PER_NODE:-1}"
      --rdzv-endpoint "$RDZV_HOST:${RDZV_PORT:-29500}" --rdzv-id "${RDZV_ID:-bnbench}")
if [[ -n "${MODULE:-}" ]]; then
  args+=(--module "$MODULE")
fi
if [[ -n "${LOCAL_ADDR:-}" ]]; then
  args+=(--local-addr "$LOCAL_ADDR")
fi
exec "$py" -m launch.run "${args[@]}" -- "$@"
