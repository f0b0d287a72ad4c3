"""Benchmarks: every figure next to the raw redis-py baseline on the same server, as a ratio."""
