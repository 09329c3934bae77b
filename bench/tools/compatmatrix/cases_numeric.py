"""The compatibility cases about numbers and execution modes: float32, autocast, channels_last,
torch.compile, CUDA graphs, no process group, --deterministic.

Each function runs on every rank of its cell (one rank for a local variant, two for a
synchronising one, bench.tools.compatmatrix.build decides) and returns (detail, Speed or None) when
the case passes; it raises CaseFailed when the layer misses the criterion and NotApplicable when
the case cannot run here. Any other exception is the layer failing and becomes the cell's detail.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from bench.run.dist import make_deterministic
from bench.tools.compatmatrix.harness import (
    FP32_TOL, CaseFailed, Ctx, NotApplicable, check_running, check_step, check_training,
    global_batch, new_layer, reference, rows, train_step,
)  # fmt: skip
from bench.tools.compatmatrix.counting import Speed, step_time_ratio

Result = tuple[str, Speed | None]
NEEDS_CUDA = "CUDA graphs need a CUDA device"


def first_batch(ctx: Ctx, prepare=lambda t: t) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of step 0's (x, dy), prepared and on the device: the timed input."""
    mine = rows(ctx.even(), ctx.rank)
    x, dy = (prepare(t)[mine].to(ctx.device) for t in global_batch(ctx, ctx.even(), 0))
    return x, dy


def fp32(ctx: Ctx) -> Result:
    _, running = check_training(ctx, new_layer(ctx), ctx.even())
    return running, None


def _autocast(ctx: Ctx, dtype: torch.dtype) -> Result:
    """Input in `dtype` (as a convolution under autocast hands it on), float32 parameters."""
    layer = new_layer(ctx)
    # a few units in the last place of the output's precision; the reference sees the rounded input
    tol = 4 * torch.finfo(dtype).eps
    got, running = check_training(ctx, layer, ctx.even(), atol=tol, rtol=tol,
                                  prepare=lambda t: t.to(dtype), autocast=dtype)
    x, dy = first_batch(ctx, lambda t: t.to(dtype))
    speed = step_time_ratio(ctx, layer, x, dy, autocast=dtype)
    return f"output {str(got['y'].dtype).removeprefix('torch.')}; {running}", speed


def bf16_autocast(ctx: Ctx) -> Result:
    return _autocast(ctx, torch.bfloat16)


def fp16_autocast(ctx: Ctx) -> Result:
    return _autocast(ctx, torch.float16)


def channels_last(ctx: Ctx) -> Result:
    layer = new_layer(ctx)
    to_nhwc = lambda t: t.contiguous(memory_format=torch.channels_last)  # noqa: E731
    got, running = check_training(ctx, layer, ctx.even(), prepare=to_nhwc)
    if not got["y"].is_contiguous(memory_format=torch.channels_last):
        raise CaseFailed("the output is not channels_last (the input was): the layer changed the "
                         "memory format")
    nhwc = got["dx"].is_contiguous(memory_format=torch.channels_last)
    dx_format = "channels_last" if nhwc else "contiguous"
    x, dy = first_batch(ctx, to_nhwc)
    return f"output channels_last, dx {dx_format}; {running}", step_time_ratio(ctx, layer, x, dy)


def _compiled(ctx: Ctx, fullgraph: bool) -> Result:
    import torch._dynamo
    import torch._inductor.config

    torch._inductor.config.compile_threads = 1  # no pool of compile workers on a shared machine
    torch._dynamo.utils.counters.clear()
    layer = new_layer(ctx)
    compiled = torch.compile(layer, fullgraph=fullgraph)
    _, running = check_training(ctx, compiled, ctx.even())
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    x, dy = first_batch(ctx)
    return f"{breaks} graph break(s); {running}", step_time_ratio(ctx, compiled, x, dy)


def compile_default(ctx: Ctx) -> Result:
    return _compiled(ctx, fullgraph=False)


def compile_fullgraph(ctx: Ctx) -> Result:
    return _compiled(ctx, fullgraph=True)


def cuda_graph(ctx: Ctx) -> Result:
    """Capture one forward and backward, replay it on three new batches: each replay's outputs and
    the running statistics after all three against float64."""
    if ctx.device.type != "cuda":
        raise NotApplicable(NEEDS_CUDA)
    if ctx.world_size > 1 and dist.get_backend() != "nccl":
        raise NotApplicable(f"capturing collectives needs NCCL; {dist.get_backend()} runs them "
                            "on the host")
    layer, sizes = new_layer(ctx), ctx.even()
    mine = rows(sizes, ctx.rank)
    static_x, static_dy = first_batch(ctx)
    static_x.requires_grad_()
    saved = {name: b.clone() for name, b in layer.named_buffers()}
    side = torch.cuda.Stream(ctx.device)
    side.wait_stream(torch.cuda.current_stream(ctx.device))
    with torch.cuda.stream(side):  # warm-up off the capturing stream, as torch.cuda.graph asks
        for _ in range(3):
            layer(static_x).backward(static_dy)
    torch.cuda.current_stream(ctx.device).wait_stream(side)
    with torch.no_grad():  # the warm-up steps are not part of the check
        for name, b in layer.named_buffers():
            b.copy_(saved[name])
    layer.zero_grad(set_to_none=True)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = layer(static_x)
        static_y.backward(static_dy)
    refs = []
    for step in range(3):
        x, dy = global_batch(ctx, sizes, step)
        with torch.no_grad():
            static_x.copy_(x[mine])
            static_dy.copy_(dy[mine])
        graph.replay()
        refs.append(reference(x, dy))
        got = {"y": static_y, "dx": static_x.grad, "dweight": layer.weight.grad,
               "dbias": layer.bias.grad}
        check_step(ctx, got, refs[-1], mine, FP32_TOL, FP32_TOL)
    return f"3 replays; {check_running(layer, refs, FP32_TOL, FP32_TOL)}", None


def no_process_group(ctx: Ctx) -> Result:
    if dist.is_available() and dist.is_initialized():
        raise RuntimeError("the no-process-group case ran with a process group")
    _, running = check_training(ctx, new_layer(ctx), ctx.even())
    return f"trains as local batch norm; {running}", None


def deterministic(ctx: Ctx) -> Result:
    """bench.train --deterministic's settings (bench.run.dist.make_deterministic), then the same two
    steps twice from the same start: every output, gradient and buffer bitwise equal."""
    make_deterministic(0)
    mine, sizes = rows(ctx.even(), ctx.rank), ctx.even()
    runs = []
    for _ in range(2):
        layer, record = new_layer(ctx), {}
        for step in range(2):
            x, dy = global_batch(ctx, sizes, step)
            for key, t in train_step(layer, x[mine].to(ctx.device), dy[mine].to(ctx.device)).items():
                record[f"{key} (step {step})"] = t
        record.update({name: b.clone() for name, b in layer.named_buffers()})
        runs.append(record)
    for key, first in runs[0].items():
        if not torch.equal(first, runs[1][key]):
            diff = float((first.double() - runs[1][key].double()).abs().max())
            raise CaseFailed(f"{key} differs between two identical runs by up to {diff:.3g}")
    return f"{len(runs[0])} tensors bitwise equal across two runs", None
