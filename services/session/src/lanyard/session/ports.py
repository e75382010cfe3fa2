"""The interfaces the session service's use cases depend on; adapters implement them."""
