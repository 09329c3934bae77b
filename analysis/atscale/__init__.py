"""The at-scale model: collective cost, the step model, workloads and what traces say about
exposed communication → predicted step times at 1 to 4,096 ranks (docs/scale.md).

Rule: pure; imports neither `analysis.load` nor `analysis.render`.
"""
