"""The collector: HTTP ingest of exposures and events into Kafka, and the consumer that folds them into Redis."""
