"""Benchmarks and long simulations, run by hand (``python -m bench.<area>.<name>``), never by the test suite."""
