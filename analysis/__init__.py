"""Analysis of bnbench run directories and profiler traces (pandas, no torch)."""
