"""clean area."""
