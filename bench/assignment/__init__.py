"""Benchmarks of assignment: ``POST /v1/assign`` under wrk next to a bare ASGI app, and the SDK's local evaluation
next to GrowthBook's. Run with ``.venv/bin/python -m bench.assignment`` against `make up`."""
