"""Placeholder: the Segment/RudderStack-compatible collector routes are being built."""

from __future__ import annotations

from fastapi import FastAPI

from mecdp.api.state import AppState


def install_collector(app: FastAPI, state: AppState) -> None:  # noqa: ARG001
    """Register the collector routes and its workers on `app`."""
