"""One rank of a real K-rank local-BN run, for tests/test_emulate.py (started by torchrun, gloo, CPU).

    torchrun --standalone --nproc_per_node=2 -m tests.emulate_worker OUT.pt

For each local variant (scratch, nn), every rank builds the same seeded LeNet-BN under DDP, takes its slice (rank r: rows r·P … (r+1)·P − 1)
of one fixed batch, and trains two SGD steps on it; then evaluates a fixed test batch after
broadcasting rank 0's running statistics, as bench.train does. Rank 0 saves every rank's logits,
its own state_dict after the steps and the eval logits to OUT.pt, keyed by variant.
"""
from __future__ import annotations

import sys

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from bench.run import dist
from bench.nets import build_model
from bench.bn import make_norm

GLOBAL_BATCH, STEPS, LR = 16, 2, 0.5
VARIANTS = ("nn", "scratch")


def fixed_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x): the same tensors in every process that calls this."""
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(GLOBAL_BATCH, 1, 28, 28, generator=g) * 2 + torch.arange(GLOBAL_BATCH).view(-1, 1, 1, 1) / 8
    y = torch.randint(0, 10, (GLOBAL_BATCH,), generator=g)
    return x, y, torch.rand(10, 1, 28, 28, generator=g)


def run_variant(variant: str, info: dist.DistInfo) -> dict:
    x, y, test_x = fixed_data()
    per_rank = GLOBAL_BATCH // info.world_size
    mine = slice(info.rank * per_rank, (info.rank + 1) * per_rank)
    torch.manual_seed(0)
    net = build_model("lenet", lambda c, d: make_norm(variant, c, d))
    model = DDP(net)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    logits_per_step = []
    for _ in range(STEPS):
        logits = model(x[mine])
        parts = [torch.empty_like(logits) for _ in range(info.world_size)]
        tdist.all_gather(parts, logits.detach())
        logits_per_step.append(torch.cat(parts))
        loss = F.cross_entropy(logits, y[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}  # before rank 0's broadcast
    for b in net.buffers():
        tdist.broadcast(b, src=0)
    net.eval()
    with torch.no_grad():
        eval_logits = net(test_x)
    return {"logits": logits_per_step, "state": state, "eval_logits": eval_logits}


def main(out: str) -> None:
    torch.set_num_threads(1)
    info = dist.setup("cpu", "gloo", timeout_s=60)
    results = {v: run_variant(v, info) for v in VARIANTS}
    if info.is_main:
        torch.save(results, out)
    dist.teardown()


if __name__ == "__main__":
    main(sys.argv[1])
