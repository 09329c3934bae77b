"""A training run. Rule: may import bench.bn, bench.nets, bench.rundir, bench.errors, bench.quiet, torch,
torchvision and PIL; never bench.tools, analysis or launch.

Read top to bottom: flags become a ``TrainConfig`` (config), resolved once into a frozen ``RunPlan``
(plan: every check, the run's name, directory, batches and BN group, the data source from
datasets.spec); ``runner`` lays out the run directory (results), builds the ``Job`` (job: data from
datasets.feeds, network, DDP, optimizer, step) and hands it to the loop (loop: the epochs, each
epoch's steps, metrics and records), which uses steptimer (step times), stepstash (per-step results
kept on the device), stepbounds (between steps: divergence, stop requests, step checkpoints),
profiler, scalars and checkpoint; results writes what the run leaves; failure records why a rank
stopped. dist is the only module that reads torchrun's variables or creates process groups; the
datasets package holds each data source (Fashion-MNIST files, image folders, synthetic images);
envinfo says what produced the run.
"""
from bench.quiet import quiet_foreign_logs

quiet_foreign_logs()  # before any profiler starts: no kineto lines on stderr

