"""Use cases of the session service: they take their ports as parameters."""
