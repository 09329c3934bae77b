"""What every network shares: the norm factory type, and the one way BN layers are found and labelled.

A network builds each BN layer through ``mark(norm)``, which tags the module the factory returns, and
names the submodule its layer paths are relative to in ``bn_root`` (LeNet: its ``layers``; ResNet: the
torchvision network). ``bn_layers(net)`` then lists ``(path, module)`` for every BN layer — the names
in bn_params.csv — and ``set_bn_labels(model, True)`` wraps each of them in
``record_function("bn/<path>")`` through forward hooks, so trace analysis can attribute its kernels.
The profiler turns labels on only for its window; while they are off no hook is installed, so
unprofiled steps pay nothing for them.
"""
from __future__ import annotations

from typing import Callable

from torch import nn
from torch.profiler import record_function

NormFactory = Callable[[int, int], nn.Module]  # (num_features, dims) -> module
_MARK = "_bnbench_norm"
_HOOKS = "_bnbench_label_hooks"


def mark(norm: NormFactory) -> NormFactory:
    """The factory, with every module it builds tagged as a BN layer of the network."""
    def build(num_features: int, dims: int) -> nn.Module:
        module = norm(num_features, dims)
        setattr(module, _MARK, True)
        return module
    return build


def _network(model: nn.Module) -> nn.Module:
    """The network inside DDP or torch.compile wrappers: the first module that names a ``bn_root``."""
    found = next((m for m in model.modules() if hasattr(m, "bn_root")), None)
    if found is None:
        raise ValueError(f"{type(model).__name__} holds no bnbench network (no bn_root)")
    return found


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, module)`` of every BN layer, paths relative to the network's ``bn_root``.

    >>> from bench.nets import build_model
    >>> [name for name, _ in bn_layers(build_model("lenet", lambda c, d: nn.BatchNorm2d(c)))]
    ['bn1', 'bn2', 'bn3', 'bn4']
    """
    root = _network(model).bn_root
    return [(name, m) for name, m in root.named_modules() if getattr(m, _MARK, False)]


def set_bn_labels(model: nn.Module, on: bool) -> None:
    """Turn the ``bn/<path>`` profiler labels on or off (through DDP and compile wrappers)."""
    net = _network(model)
    for hook in getattr(net, _HOOKS, []):
        hook.remove()
    hooks: list = []
    if on:
        open_ranges: list[record_function] = []
        for name, m in bn_layers(net):
            hooks.append(m.register_forward_pre_hook(_enter(f"bn/{name}", open_ranges)))
            hooks.append(m.register_forward_hook(_exit(open_ranges)))
    object.__setattr__(net, _HOOKS, hooks)


def _enter(label: str, open_ranges: list):
    def hook(_module, _args):
        rf = record_function(label)
        rf.__enter__()
        open_ranges.append(rf)
    return hook


def _exit(open_ranges: list):
    def hook(_module, _args, _out):
        open_ranges.pop().__exit__(None, None, None)
    return hook
