"""The policy service's domain: pure rules, no I/O."""
