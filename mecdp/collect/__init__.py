"""collect area."""
