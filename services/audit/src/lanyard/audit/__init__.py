"""Lanyard audit service. The hash-chained audit log of every event."""
