"""Workspace settings: one typed `Settings`, from `mecdp.toml`-free env + defaults.

Every setting is read here and nowhere else (no `os.environ` reads in other modules).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mecdp.compute.scheduler import parse_schedule


class Settings(BaseSettings):
    """Settings of one workspace. Environment variables are prefixed `MECDP_`."""

    model_config = SettingsConfigDict(env_prefix="MECDP_", extra="ignore")

    workspace: Path = Field(default=Path("workspace"), description="Workspace folder")
    host: str = Field(default="127.0.0.1", description="Host `mecdp serve` binds")
    port: int = Field(default=8000, description="Port `mecdp serve` binds")
    engine: str = Field(default="duckdb", description="Batch engine: duckdb or spark")
    max_event_bytes: int = Field(default=32 * 1024, description="Limit of one event")
    max_batch_bytes: int = Field(default=500 * 1024, description="Limit of one request body")
    commit_interval_ms: float = Field(
        default=2.0, description="Group commit: longest wait to gather more requests"
    )
    stream_processor: bool = Field(
        default=True, description="Run the stream processor inside `mecdp serve`"
    )
    stream_interval_ms: float = Field(
        default=200.0, description="How often the stream processor polls the raw log"
    )
    default_region: str = Field(default="CN", description="Phone region when no +code")
    timezone: str = Field(default="Asia/Shanghai", description="Local time of the chain")
    secret_key: str | None = Field(
        default=None, description="Keyed-hash secret; else read from the workspace key file"
    )
    data_keys: str | None = Field(
        default=None,
        description="Field-encryption key ring as JSON; else read from secrets/data.keys",
    )
    session_ttl_minutes: int = Field(default=480, description="Lifetime of a login session")
    login_max_failures: int = Field(
        default=5, description="Failed logins per user and address before throttling"
    )
    login_window_minutes: int = Field(default=15, description="Login throttling window")
    compute_schedule: str = Field(
        default="daily@03:00",
        description="When `mecdp serve` recomputes member layering (tags, RFM, CLV, tiers): "
        "daily@HH:MM in the local timezone, every:<n><s|m|h|d>, or off",
    )

    @field_validator("compute_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        return parse_schedule(value).text

    @property
    def db_path(self) -> Path:
        return self.workspace / "mecdp.duckdb"

    @property
    def raw_files_dir(self) -> Path:
        """Immutable copies of every imported file: the raw log of bulk data."""
        return self.workspace / "raw" / "files"

    @property
    def secrets_dir(self) -> Path:
        return self.workspace / "secrets"

    @property
    def server_file(self) -> Path:
        """Written by `mecdp serve`: where the process owning the store listens."""
        return self.workspace / "server.json"

    def key(self) -> bytes:
        """The workspace secret used for keyed hashes (id-card numbers, blind indexes)."""
        if self.secret_key:
            return self.secret_key.encode()
        return (self.secrets_dir / "hash.key").read_bytes().strip()

    def admin_token(self) -> str:
        """Token the CLI uses to reach a running server's admin routes."""
        return (self.secrets_dir / "admin.token").read_text().strip()


def init_workspace(settings: Settings) -> None:
    """Create the workspace folders and secrets (idempotent; never rotates an existing key)."""
    settings.workspace.mkdir(parents=True, exist_ok=True)
    settings.raw_files_dir.mkdir(parents=True, exist_ok=True)
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    settings.secrets_dir.chmod(0o700)
    for name in ("hash.key", "admin.token"):
        path = settings.secrets_dir / name
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
