"""Benchmarks (``docs/benchmarks.md``): each module is one benchmark, run with
``python -m bench.<name>``, on the shared parts in ``bench/harness.py`` (embedded servers,
web and worker subprocesses, k6 at fixed arrival rates, statistics, reports); results go
to ``bench/results/``."""
