"""activate area."""
