"""Use cases of the audit service: they take their ports as parameters."""
