"""audiences area."""
