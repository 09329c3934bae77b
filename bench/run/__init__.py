"""A training run. Rule: may import bench.bn, bench.nets, bench.rundir, bench.errors, bench.quiet, torch,
torchvision and PIL; never bench.tools, analysis or launch.

Flags become a ``TrainConfig`` (config), which is resolved once into a frozen ``RunPlan`` (plan: every
check, the run's name, directory, batches and BN group); ``train`` then builds the job and drives the
loop (loop: one epoch, its metrics), which uses step (eager / compile / graph steps), timing, outputs
(per-step results kept on the device), divergence, preempt (stop requests, step checkpoints),
profiler, scalars and checkpoint; results writes
what the run leaves; failure records why a rank stopped. dist is the only module that reads
torchrun's variables or creates process groups; inputs resolves the data source into the plan
(shape, classes, set sizes: Fashion-MNIST, synthetic images or an image folder), sources serves each
rank's batches from it (data holds Fashion-MNIST on the device, images the image folder and synthetic
images); envinfo says what produced the run.
"""
from bench.quiet import quiet_foreign_logs

quiet_foreign_logs()  # before any profiler starts: no kineto lines on stderr

