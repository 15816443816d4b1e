"""Benchmarks and simulations of the analyzer's statistics engine."""
