"""The collector's Redis and Kafka pieces: the fold script and its caller, the events consumer."""
