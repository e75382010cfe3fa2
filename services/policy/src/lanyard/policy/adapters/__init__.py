"""Adapters of the policy service: Redis and Kafka implementations of its ports."""
