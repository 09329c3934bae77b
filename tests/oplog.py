"""Count the aten ops a piece of code dispatches (below autograd, as a device would be asked to run)."""
from __future__ import annotations

import collections

from torch.utils._python_dispatch import TorchDispatchMode


class OpLog(TorchDispatchMode):
    """`with OpLog() as log: ...` then `log.ops`: a Counter of aten op names dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))
