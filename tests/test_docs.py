"""Docs that tests keep true: the README's two commands, the CLI and settings references."""

from __future__ import annotations

from pathlib import Path

from mecdp.cli import app
from mecdp.docs import cli_reference, settings_reference

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nmake test\n" in ci


def test_cli_reference_is_current() -> None:
    # Regenerate with `make docs` after changing a command or option.
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == cli_reference(app)


def test_settings_reference_is_current() -> None:
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == settings_reference()
