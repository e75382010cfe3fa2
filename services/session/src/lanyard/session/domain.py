"""The session service's domain: pure rules, no I/O."""
