"""The interfaces the policy service's use cases depend on; adapters implement them."""
