"""bnbench's training side: it produces run directories.

Layers, each a folder whose ``__init__`` states what it may import (docs/architecture.md):

    bn/     the batch-norm layers and their factory; they know nothing of networks or the loop
    nets/   networks built from a norm factory
    run/    a training run: flags -> a run plan resolved once -> the loop -> the run directory
    tools/  the logic of the stand-alone measurements (micro-benchmark, modes, overhead, the
            compatibility matrix) built from run/

Beside them, two torch-free modules that analysis/ and launch/ share: ``rundir`` (the run-directory
format: variants, statuses, file names, thresholds) and ``errors`` (usage errors and exit codes).
The thin modules beside them are the ``python -m bench.X`` commands; the commands table of
docs/architecture.md lists every command of the project. This file imports nothing, so ``import bench.rundir`` pulls in no torch.
"""
