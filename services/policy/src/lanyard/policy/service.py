"""Use cases of the policy service: they take their ports as parameters."""
