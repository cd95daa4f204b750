"""console area."""
