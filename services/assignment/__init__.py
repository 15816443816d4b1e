"""The assignment service: experiment definitions and deterministic variant assignment with exposure logging."""
