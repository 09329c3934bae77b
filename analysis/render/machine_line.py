"""The one line a results page names its machine with (GPU and driver, CUDA, cuDNN, NCCL, CPU,
memory, Python, torch), from a run's env.json as a dict; a field it does not hold reads "not recorded"."""
from __future__ import annotations

MISSING = "not recorded"


def _field(env: dict, key: str) -> str:
    value = env.get(key)
    return MISSING if value is None or value == [] else str(value)


def _gpus(env: dict) -> str:
    names = env.get("visible_gpus")
    if names is None:
        return f"GPU {MISSING}"
    if not names:
        return "no GPU"
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    gpus = ", ".join(f"{k}× {n}" if k > 1 else n for n, k in counts.items())
    return f"{gpus} (driver {_field(env, 'gpu_driver')})"


def machine_line(env: dict) -> str:
    """One sentence naming the machine of a run's env.json.

    >>> machine_line({"visible_gpus": ["H200"], "gpu_driver": "580.1", "cpu_name": "Xeon", "cpu_count": 2,
    ...               "memory_gib": 23.5, "torch": "2.14.1", "cuda": "13.0", "python": "3.11.7"}).split("; ")
    ['H200 (driver 580.1)', 'CPU Xeon, 2 logical CPUs, 23.5 GiB', 'torch 2.14.1 built for CUDA 13.0, cuDNN not recorded, NCCL not recorded', 'Python 3.11.7']
    """
    cpu = [f"CPU {_field(env, 'cpu_name')}"]
    if env.get("cpu_count") is not None:
        cpu.append(f"{env['cpu_count']} logical CPUs")
    cpu.append(f"{env['memory_gib']} GiB" if env.get("memory_gib") is not None else f"memory {MISSING}")
    libs = f"torch {_field(env, 'torch')} built for CUDA {_field(env, 'cuda')}"
    if env.get("visible_gpus") == []:
        libs += " (no GPU: cuDNN and NCCL unused)"
    else:
        libs += f", cuDNN {_field(env, 'cudnn')}, NCCL {_field(env, 'nccl')}"
    return f"{_gpus(env)}; {', '.join(cpu)}; {libs}; Python {_field(env, 'python')}"
