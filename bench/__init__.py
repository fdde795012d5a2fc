"""Benchmarks: each module starts its own embedded servers, seeds data and measures the API
in-process. Run one with ``python -m bench.<name>``; results go to ``bench/results/``."""
