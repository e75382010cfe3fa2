"""Adapters of the idp service: Redis and Kafka implementations of its ports."""
