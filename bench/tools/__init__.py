"""Stand-alone measurements. Rule: may import everything in bench/ (they reuse the run's own flags,
steps, timing and loop pieces rather than copying them); nothing in bench/ imports them.

    micro     BN layer forward / forward+backward against a copy of the tensor (python -m bench.micro)
    modes     examples/s of eager, compiled and CUDA-graph steps side by side (python -m bench.modes)
    overhead  what the harness and the profiler cost against a bare loop (python -m bench.overhead)
    variants  the BN variants and whether each can run on this machine (python -m bench.variants)
"""
