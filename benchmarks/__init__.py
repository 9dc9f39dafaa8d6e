"""Benchmarks of the ingest functions (``make bench``): CPU per record, events per call, time and memory.

Figures, not tests: nothing here asserts a speed. ``python -m benchmarks`` prints a table and writes a JSON
results file; docs/benchmarks.md explains what each scenario measures and how.
"""
