"""Load and throughput benchmarks for imgcdn: `python -m benchmarks.load --scenario hit`.

Not part of the installed package or the unit-test run; see benchmarks/README.md.
"""
