"""What the running server holds: settings, the store it owns, its background workers, and
the caches in front of the store (who a token names; masked profile answers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mecdp.config import Settings
from mecdp.privacy.auth import PrincipalCache
from mecdp.profiles.serving import ServingCache
from mecdp.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    # Background workers started with the app (collector writer, stream processor, ...);
    # each has start() and stop().
    workers: list[Any] = field(default_factory=list)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    serving: ServingCache | None = None  # set by `create_app`
