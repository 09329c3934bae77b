"""Stand-alone measurements. Rule: may import everything in bench/ (they reuse the run's own flags,
steps, timing and loop pieces rather than copying them); nothing in bench/ imports them.

    bn_microbench     BN layer forward / forward+backward against a copy of the tensor (bench.micro)
    microbench_shapes the BN inputs of each network, for bn_microbench
    mode_compare      examples/s of eager, compiled and CUDA-graph steps side by side (bench.modes)
    overhead_measure  what the harness and the profiler cost against a bare loop (bench.overhead)
    collective_bench  all-reduce and all-gather timed as nccl-tests does, plus BN's own collectives
                      (bench.collectives)
    compatmatrix/     which variant survives which reported failure: a matrix of small real checks,
                      each in its own processes with its own time limit (bench.compat)
    interleave        every variant timed side by side in shuffled rounds, the baseline twice as an
                      A/A control (bench.timing; timingcli holds its flags, machineload the load samples)
    variant_list      the BN variants and whether each can run on this machine (bench.variants)

The commands themselves are the thin modules bench/<command>.py (docs/architecture.md, Commands).
"""
from bench.quiet import quiet_foreign_logs

quiet_foreign_logs()  # before any profiler starts: no kineto lines on stderr

