"""The compatibility matrix: which BN variant survives which reported failure (python -m bench.compat).

    build          the matrix: every variant × case, one cell at a time, and the command's flags
    childprocs     one cell in child processes forked from a fork server, with a deadline
    harness        what every case shares: variant factories, per-rank context, inputs, float64
                   reference, comparisons that raise CaseFailed
    counting       counting a layer's collectives and timing its steps
    cases_numeric  the cases about numbers and execution modes (dtypes, compile, graphs, ...)
    cases_ranks    the cases about ranks and models (uneven and empty batches, skipped calls, ...)
"""
