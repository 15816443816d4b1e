"""Throughput, freshness and memory of the event pipeline, measured against the running dev stack (`make up`).

    .venv/bin/python -m bench.ingest

Prints four figures, each next to its ceiling or goal: HTTP ingest by one collector worker (vs aiokafka producing
the same bytes alone), aggregation by one consumer (vs redis-benchmark on the same Redis), freshness of a
conversion in the analyzer's results, and Redis memory per tracked (user, metric).
"""
