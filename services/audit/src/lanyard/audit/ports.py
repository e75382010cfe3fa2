"""The interfaces the audit service's use cases depend on; adapters implement them."""
