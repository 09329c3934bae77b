"""The compatibility cases about ranks and models: eval mode, uneven and empty per-rank batches, a
rank that skips a call, converting a model that holds a BN subclass.

Same contract as bench.tools.compatmatrix.cases_numeric: run on every rank of the cell, return (detail, None) on a
pass, raise CaseFailed or NotApplicable otherwise.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from bench.tools.compatmatrix.harness import (
    EPS, FP32_TOL, CaseFailed, Ctx, affine, check_training, close,
    global_batch, new_layer, rows, train_step,
)  # fmt: skip
from bench.tools.compatmatrix.counting import CountCollectives, Speed

Result = tuple[str, Speed | None]
UNEVEN, EMPTY_RANK = (5, 11), (0, 12)  # per-rank batches; rank 0 holds nothing in EMPTY_RANK
# skipped-call: the process group's timeout, and how long past it rank 0 may take to raise
SKIP_PG_TIMEOUT_S, SKIP_GRACE_S = 5.0, 25.0


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _seeded_running_stats(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    channels = layer.running_mean.numel()
    mean, var = torch.randn(channels, generator=gen), 0.5 + torch.rand(channels, generator=gen)
    with torch.no_grad():
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
    return mean.double(), var.double()


def eval_no_collective(ctx: Ctx) -> Result:
    """Eval forward and backward on every rank, with the process group up: zero collective calls, and
    y, dx from the running statistics (y = (x - mean) / sqrt(var + eps) * w + b)."""
    layer = new_layer(ctx, synced_training=False).eval()
    mean, var = _seeded_running_stats(layer)
    x, dy = (t[rows(ctx.even(), ctx.rank)] for t in global_batch(ctx, ctx.even(), 0))
    with CountCollectives() as counter:
        got = train_step(layer, x.to(ctx.device), dy.to(ctx.device))
    if counter.calls:
        calls = ", ".join(f"{name} x{n}" for name, n in sorted(counter.calls.items()))
        raise CaseFailed(f"eval forward and backward issued {sum(counter.calls.values())} collective "
                         f"call(s): {calls}")
    weight, bias = (t.double().view(1, -1, 1, 1) for t in affine(ctx.channels))
    scale = weight / torch.sqrt(var.view(1, -1, 1, 1) + EPS)
    close("y", got["y"], (x.double() - mean.view(1, -1, 1, 1)) * scale + bias, FP32_TOL, FP32_TOL)
    close("dx", got["dx"], dy.double() * scale, FP32_TOL, FP32_TOL)
    close("running_mean after eval", layer.running_mean, mean, 0.0)
    return "0 collectives; y and dx from the running statistics", None


def uneven_batches(ctx: Ctx) -> Result:
    _, running = check_training(ctx, new_layer(ctx), UNEVEN)
    return f"batches {UNEVEN}: global statistics on every rank; {running}", None


def empty_rank(ctx: Ctx) -> Result:
    """Synchronising: rank 0 holds no samples and must end with rank 1's statistics. Local (one
    process): an empty batch gives an empty output and gradient and leaves the running statistics
    as they were, the behaviour pytorch/pytorch#36530 asks for (there is nothing to average)."""
    if ctx.spec.synchronising:
        _, running = check_training(ctx, new_layer(ctx), EMPTY_RANK)
        return f"batches {EMPTY_RANK}: every rank ends with the 12 samples' statistics; {running}", None
    layer = new_layer(ctx)
    before = {name: b.clone() for name, b in layer.named_buffers()}
    empty = torch.zeros(0, *ctx.shape[1:], device=ctx.device)
    got = train_step(layer, empty, empty)
    for key in ("y", "dx"):
        if got[key] is None or got[key].shape != empty.shape:
            shape = None if got[key] is None else tuple(got[key].shape)
            raise CaseFailed(f"{key} of an empty batch is {shape}")
    for name, b in layer.named_buffers():
        if name.startswith("running_") and not torch.equal(b, before[name]):
            moved = float((b - before[name]).abs().max())
            changed = "non-finite" if not torch.isfinite(b).all() else f"moved by up to {moved:.3g}"
            raise CaseFailed(f"an empty batch changed {name}: {changed}")
    return "one process, empty batch: empty output and dx, running statistics unchanged", None


def skipped_call(ctx: Ctx) -> Result:
    """Both ranks make one training call; then rank 1 stays alive but skips the next call, which rank
    0 makes. Rank 0 must end with an error within the process group's timeout (SKIP_PG_TIMEOUT_S,
    plus SKIP_GRACE_S for a loaded machine), not wait forever; only rank 0's result decides."""
    layer = new_layer(ctx)
    x, dy = (t[rows(UNEVEN, ctx.rank)].to(ctx.device) for t in global_batch(ctx, UNEVEN, 0))
    train_step(layer, x, dy)
    if ctx.rank != 0:
        time.sleep(3 * SKIP_PG_TIMEOUT_S + SKIP_GRACE_S)  # the runner ends this rank once rank 0 reports
        return "rank 1 skipped the second call", None
    start = time.monotonic()
    try:
        train_step(layer, x, dy)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)  # NCCL collectives are asynchronous
    except Exception as e:  # noqa: BLE001 - any error is the clear end this case asks for
        took = time.monotonic() - start
        if took > SKIP_PG_TIMEOUT_S + SKIP_GRACE_S:
            raise CaseFailed(f"rank 0 raised only after {took:.0f} s: {first_line(e)}") from None
        return f"rank 0 raised after {took:.1f} s: {first_line(e)}", None
    raise CaseFailed("rank 0's call completed although rank 1 never made it: no collective joined")


def _with_relu(layer: nn.Module) -> nn.Module:
    """`layer`, now an instance of a subclass of its class whose forward adds a ReLU (the shape of
    timm's BatchNormAct2d), with weight.requires_grad off (what pytorch/pytorch#22569 reset)."""
    base = type(layer)
    layer.__class__ = type(f"{base.__name__}ReLU", (base,),
                           {"forward": lambda self, x: torch.relu(base.forward(self, x))})
    layer.weight.requires_grad_(False)
    return layer


def convert_subclass(ctx: Ctx) -> Result:
    """nn.SyncBatchNorm.convert_sync_batchnorm, the converter users apply to make a model
    synchronise, on a model holding a subclass of this variant's layer: the layer must come back
    as it was (kept) or the converter must raise (refused). Eval mode, one process."""
    layer = _with_relu(new_layer(ctx, synced_training=False)).eval()
    sub = type(layer)
    _seeded_running_stats(layer)
    x = global_batch(ctx, ctx.even(), 0)[0].to(ctx.device)
    model = nn.Sequential(layer)
    with torch.no_grad():
        before = model(x)
    try:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    except Exception as e:  # noqa: BLE001 - refusing is one of the two right answers
        return f"refused: {first_line(e)}", None
    after_layer = converted[0]
    with torch.no_grad():
        after = converted(x)
    changes = []
    if type(after_layer) is not sub:
        changes.append(f"{sub.__name__} became {type(after_layer).__name__}")
    if not torch.equal(before, after):
        changes.append(f"the output changed by up to {float((before - after).abs().max()):.3g}")
    if after_layer.weight.requires_grad:
        changes.append("weight.requires_grad was turned back on")
    if changes:
        raise CaseFailed("convert_sync_batchnorm changed the subclass: " + "; ".join(changes))
    return "kept: the converter left the subclass as it was", None
