"""`python -m mecdp` is the `mecdp` command."""

from mecdp.cli import app

app()
