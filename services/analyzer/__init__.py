"""The analyzer: reads the experiments' sufficient statistics from Redis and answers their results."""
