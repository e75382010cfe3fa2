"""What every Lanyard service shares: settings base, structlog, broker and Redis factories,
consumer rules with dead-lettering, health and metrics, and the service lifecycle."""
