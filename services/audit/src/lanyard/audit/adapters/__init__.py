"""Adapters of the audit service: Redis and Kafka implementations of its ports."""
