"""Redis and Kafka pieces specific to the assignment service."""
