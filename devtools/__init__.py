"""Maintainers' tools, apart from what users run (launch/): the GPU checks and the README picture.

    gpu_check.sh             every GPU-only test and check on a CUDA machine, in one go
    gpu_fused_check          the fused kernels against nn.BatchNorm on the GPU, and their bytes/s
    gpu_reliability_check    stop, resume and divergence paths on the GPU
    fused_compile_check      the fused layer under torch.compile and CUDA graphs
    readme_picture           trains the README's comparison and photographs its report

Rule: may import bench, analysis and launch; nothing imports devtools.
"""
from bench.quiet import quiet_foreign_logs

quiet_foreign_logs()  # before any profiler starts: no kineto lines on stderr
