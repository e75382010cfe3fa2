"""The audit service's domain: pure rules, no I/O."""
