"""A training run. Rule: may import bench.bn, bench.nets, bench.rundir, bench.errors and torch; never
bench.tools, analysis or launch.

Flags become a ``TrainConfig`` (config), which is resolved once into a frozen ``RunPlan`` (plan: every
check, the run's name, directory, batches and BN group); ``train`` then builds the job and drives the
loop (loop: one epoch, its metrics), which uses step (eager / compile / graph steps), timing, outputs
(per-step results kept on the device), divergence, preempt (stop requests, step checkpoints),
profiler, scalars and checkpoint; results writes what the run leaves; failure records why a rank
stopped. dist is the only module that reads torchrun's variables or creates process groups; data
holds Fashion-MNIST on the device; envinfo says what produced the run.
"""
