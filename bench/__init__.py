"""Benchmarks: run by hand (`make bench`), never as timed tests. Results go to bench/README.md."""
