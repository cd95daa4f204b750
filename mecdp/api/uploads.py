"""Uploaded files land in a private temporary folder under their own (base) name, because the
file readers detect the format and report errors by file name."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile


@contextmanager
def saved_upload(file: UploadFile, default_name: str) -> Iterator[Path]:
    """The upload as a file on disk for the length of the block."""
    name = Path(file.filename or default_name).name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        yield path
