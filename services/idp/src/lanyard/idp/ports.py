"""The interfaces the idp service's use cases depend on; adapters implement them."""
