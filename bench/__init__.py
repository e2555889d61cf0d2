"""Benchmark harness: writes ImageNet-shaped archives, times builders on them.

Run by hand (`python -m bench.run --help`); never part of the test suite.
"""
