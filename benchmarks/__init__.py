"""Benchmarks: one experiment per script, on the shared harness in ``_harness.py``.

Run each as ``python benchmarks/NAME.py`` from the repository root; ``README.md`` here lists
them with their headline figures. Results are written to ``results/NAME.{md,json}``.
"""
