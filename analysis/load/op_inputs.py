"""What a profiled op was given: its first input's shape and dtype, as ``record_shapes=True`` writes
them into a kineto trace (``args["Input Dims"]``, ``args["Input type"]``). analysis.load.trace_files
reads them into the events table; analysis.transform.bn_layers turns them into the bytes a BN layer
must move (its DTYPES say what one element of each dtype weighs). The loader keeps both fields undecoded (``msgspec.Raw``, a slice of
the file's bytes) and decodes them only for CPU ops.
"""
from __future__ import annotations

import msgspec

_ANY = msgspec.json.Decoder()


def first_input(dims: bytes, types: bytes) -> tuple[str, str]:
    """(shape, dtype) of an op's first input from its raw ``Input Dims`` / ``Input type``; ("", "") when
    that input is not a tensor with dimensions.

    >>> first_input(b"[[8, 64, 56, 56], [64], []]", b'["c10::BFloat16", "float", "Scalar"]')
    ('8x64x56x56', 'c10::BFloat16')
    >>> first_input(b"[[], [], []]", b'["long int", "long int", "Scalar"]')
    ('', '')
    """
    head = bytes(memoryview(dims)[:3])
    if len(head) < 3 or head[:2] != b"[[" or head[2:] == b"]":  # the cheap test first: [[] or not a list
        return "", ""
    first = _ANY.decode(dims)[0]
    if not first or not all(isinstance(d, int) for d in first):
        return "", ""
    kinds = _ANY.decode(types) if len(types) else []
    return "x".join(map(str, first)), str(kinds[0]) if kinds else ""
