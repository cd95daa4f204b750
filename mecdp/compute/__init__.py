"""compute area."""
