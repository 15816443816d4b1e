"""The local stack without Docker: a Kafka broker from Maven Central jars, redis-server, and the services."""
