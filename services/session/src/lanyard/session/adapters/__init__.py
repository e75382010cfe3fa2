"""Adapters of the session service: Redis and Kafka implementations of its ports."""
