"""Use cases of the idp service: they take their ports as parameters."""
