"""Stand-alone measurements. Rule: may import everything in bench/ (they reuse the run's own flags,
steps, timing and loop pieces rather than copying them); nothing in bench/ imports them.

    micro     BN layer forward / forward+backward against a copy of the tensor (python -m bench.micro)
    modes     examples/s of eager, compiled and CUDA-graph steps side by side (python -m bench.modes)
    overhead     what the harness and the profiler cost against a bare loop (python -m bench.overhead)
    collectives  all-reduce and all-gather timed as nccl-tests does, plus BN's own collectives
                 (torchrun ... -m bench.collectives)
    compat       which variant survives which reported failure: a matrix of small real checks, each
                 in its own processes with its own time limit (python -m bench.compat; compat_checks,
                 compat_measure, compat_cases, compat_dist and compat_procs are its parts)
    interleave   every variant timed side by side in shuffled rounds, the baseline twice as an A/A
                 control (python -m bench.timing; timingcli holds its flags, machineload the load samples)
    variants     the BN variants and whether each can run on this machine (python -m bench.variants)
"""
