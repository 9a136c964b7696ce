"""Benchmarks: `make bench` runs every bench_*.py module; see docs/benchmarks.md."""
