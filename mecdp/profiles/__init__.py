"""profiles area."""
