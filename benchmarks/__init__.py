"""Benchmarks run by `make bench`; results are recorded in benchmarks/RESULTS.md."""
