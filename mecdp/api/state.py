"""What the running server holds: settings, the store it owns, and its background workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mecdp.config import Settings
from mecdp.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    # Background workers started with the app (collector writer, stream processor, ...);
    # each has start() and stop().
    workers: list[Any] = field(default_factory=list)
