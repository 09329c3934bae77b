"""Networks built without memory: parameters and buffers on the meta device, other arithmetic real.

``with torch.device("meta")`` would put every tensor on the meta device, including the ones a
builder computes from (RegNet derives its stage widths with torch.arange and reads them back with
``.tolist()``, which fails on meta). ``on_meta`` moves only the tensors made by the factories that
modules allocate their parameters and buffers with.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode

_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full}


class _ParamsOnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Build modules inside: their parameters and buffers land on the meta device.

    >>> with on_meta():
    ...     layer = torch.nn.Linear(4096, 4096)
    >>> layer.weight.device
    device(type='meta')
    """
    with _ParamsOnMeta():
        yield
