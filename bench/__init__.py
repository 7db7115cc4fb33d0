"""Benchmarks, run by `make bench` (every bench/*_bench.py). Nothing here is loaded by the product."""
