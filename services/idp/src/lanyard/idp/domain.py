"""The idp service's domain: pure rules, no I/O."""
