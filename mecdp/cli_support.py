"""What every CLI module shares: the parsed workspace settings, the error-to-exit-code
wrapper, and opening the store in this process when no server owns it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from mecdp.config import Settings, init_workspace
from mecdp.errors import MeCdpError
from mecdp.store import Store, open_store

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True)


class CliContext:
    """Set by the root callback once `--workspace` / MECDP_WORKSPACE is parsed."""

    settings: Settings = Settings()


ctx = CliContext()


def current_settings() -> Settings:
    return ctx.settings


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a MeCdpError as one clear line and exit with its code (2 for bad input)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MeCdpError as exc:
            details = " ".join(f"{k}={v}" for k, v in exc.details.items())
            err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False)
            if details:
                err_console.print(f"  {details}", highlight=False, markup=False)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper


@contextmanager
def local_store() -> Iterator[Store]:
    """Open the workspace store in this process (no server owns it), keys in place."""
    from mecdp.privacy.crypto import load_keyring

    settings = ctx.settings
    init_workspace(settings)
    load_keyring(settings)
    store = open_store(settings.db_path)
    try:
        yield store
    finally:
        store.close()
