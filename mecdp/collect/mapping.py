"""Source mappings: which file columns feed which canonical fields of a record kind.

A mapping is a small YAML file (shipped in `mecdp/collect/mappings/`, or kept by a
workspace in `<workspace>/mappings/`)::

    name: pos_orders                  # unique, = file stem
    kind: orders                      # a key of mecdp.clean.kinds.RECORD_KINDS
    channel: pos                      # default channel code (mecdp.clean.codes.CHANNELS)
    description: 门店收银系统订单导出 (store POS orders)
    money_unit: yuan                  # yuan | fen
    defaults:                         # constant raw values for fields absent from the file
      channel: pos
    columns:                          # canonical field -> accepted column headers
      order_no: [订单号, 单号, 订单编号, order_no]

Headers match after `normalize_header` (trim, full-width -> half-width, lower-case, no
spaces or ()（）[]【】:：_-). A header that is itself a canonical field name of the kind
matches that field too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mecdp.clean.codes import CHANNELS
from mecdp.clean.kinds import RECORD_KINDS, RecordKind
from mecdp.errors import InputError

MAPPINGS_PACKAGE = "mecdp.collect.mappings"
MONEY_UNITS = ("yuan", "fen")
_KEYS = ("name", "kind", "channel", "description", "money_unit", "defaults", "columns")
_STRIPPED = re.compile(r"[\s()（）\[\]【】:：_\-]+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def normalize_header(header: str) -> str:
    """The form headers are compared in, e.g. `" 手机号（主）"` -> `"手机号主"`.

    Full-width characters become half-width (NFKC), letters lower-case, and spaces and
    the characters ()（）[]【】:：_- are removed.
    """
    text = unicodedata.normalize("NFKC", str(header)).strip().lower()
    return _STRIPPED.sub("", text)


@dataclass(frozen=True)
class HeaderMatch:
    """How one file's headers map onto a kind's fields."""

    fields: dict[str, int]  # canonical field -> index of the header that feeds it
    unknown: list[int]  # headers that feed no field (kept in quarantine payloads)
    missing_required: list[str]  # required fields with neither a header nor a default

    def header_of(self, headers: Sequence[str], field_name: str) -> str | None:
        index = self.fields.get(field_name)
        return headers[index] if index is not None else None


@dataclass(frozen=True)
class Mapping:
    """A validated source mapping."""

    name: str
    kind: str
    channel: str | None
    description: str
    money_unit: str
    defaults: dict[str, str]
    columns: dict[str, tuple[str, ...]]
    origin: str = ""  # where it was loaded from (file path or package)
    _lookup: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def record_kind(self) -> RecordKind:
        return RECORD_KINDS[self.kind]

    def accepted_headers(self, field_name: str) -> list[str]:
        """The headers accepted for a field, the field name itself last."""
        names = list(self.columns.get(field_name, ()))
        if field_name not in names:
            names.append(field_name)
        return names

    def field_for(self, header: str) -> str | None:
        """The canonical field a header feeds, or None."""
        return self._lookup.get(normalize_header(header))

    def match(self, headers: Sequence[str]) -> HeaderMatch:
        """Map a file's headers onto fields.

        When several headers feed one field, the one matching the earliest accepted alias
        wins (the field name itself ranks last); the others are kept as unknown columns.
        """
        best: dict[str, tuple[int, int]] = {}  # field -> (alias rank, header index)
        for index, header in enumerate(headers):
            field_name = self.field_for(header)
            if field_name is None:
                continue
            rank = self._rank(field_name, header)
            if field_name not in best or rank < best[field_name][0]:
                best[field_name] = (rank, index)
        fields = {name: index for name, (_, index) in best.items()}
        used = set(fields.values())
        unknown = [i for i in range(len(headers)) if i not in used]
        missing = [
            f for f in self.record_kind.required if f not in fields and f not in self.defaults
        ]
        return HeaderMatch(fields=fields, unknown=unknown, missing_required=missing)

    def _rank(self, field_name: str, header: str) -> int:
        key = normalize_header(header)
        for rank, alias in enumerate(self.columns.get(field_name, ())):
            if normalize_header(alias) == key:
                return rank
        return len(self.columns.get(field_name, ()))

    def public(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "channel": self.channel,
            "description": self.description,
            "money_unit": self.money_unit,
            "defaults": dict(self.defaults),
            "columns": {k: list(v) for k, v in self.columns.items()},
        }


def _invalid(origin: str, key: str, reason: str, value: Any = None) -> InputError:
    return InputError(
        f"mapping {origin}: {key}: {reason}",
        field=key,
        value=value if isinstance(value, str | int | float | bool) else None,
        rule="mapping.invalid",
        file=origin,
    )


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def parse_mapping(data: Any, *, origin: str, stem: str | None = None) -> Mapping:
    """Validate a mapping document; errors name the file (`origin`) and the key."""
    if not isinstance(data, dict):
        raise _invalid(origin, "(top level)", "a mapping must be a YAML object")
    for key in data:
        if key not in _KEYS:
            raise _invalid(origin, str(key), f"unknown key; allowed: {', '.join(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _invalid(origin, "name", "required: letters, digits, _ . - (the file stem)", name)
    if stem is not None and name != stem:
        raise _invalid(origin, "name", f"must equal the file stem {stem!r}", name)
    kind_name = data.get("kind")
    if kind_name not in RECORD_KINDS:
        raise _invalid(origin, "kind", f"must be one of: {', '.join(RECORD_KINDS)}", kind_name)
    kind = RECORD_KINDS[kind_name]
    field_names = {f.name for f in kind.fields}
    channel = data.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise _invalid(
            origin, "channel", f"unknown channel; one of: {', '.join(CHANNELS)}", channel
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _invalid(origin, "description", "must be text")
    money_unit = data.get("money_unit", "yuan")
    if money_unit not in MONEY_UNITS:
        raise _invalid(origin, "money_unit", "must be yuan or fen", money_unit)

    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        raise _invalid(origin, "defaults", "must be an object of field: value")
    defaults: dict[str, str] = {}
    for key, value in raw_defaults.items():
        if key not in field_names:
            raise _invalid(origin, f"defaults.{key}", f"not a field of kind {kind.name}")
        text = _scalar_text(value)
        if text is None:
            raise _invalid(origin, f"defaults.{key}", "must be a single value")
        defaults[str(key)] = text

    raw_columns = data.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise _invalid(origin, "columns", "required: an object of field: [accepted headers]")
    columns: dict[str, tuple[str, ...]] = {}
    lookup: dict[str, str] = {}
    for key, value in raw_columns.items():
        if key not in field_names:
            raise _invalid(origin, f"columns.{key}", f"not a field of kind {kind.name}")
        aliases = [value] if isinstance(value, str) else value
        if not isinstance(aliases, list) or not aliases:
            raise _invalid(origin, f"columns.{key}", "must be a list of headers")
        texts: list[str] = []
        for alias in aliases:
            text = _scalar_text(alias)
            if text is None or not normalize_header(text):
                raise _invalid(origin, f"columns.{key}", "each header must be non-empty text")
            other = lookup.get(normalize_header(text))
            if other is not None and other != key:
                raise _invalid(
                    origin, f"columns.{key}", f"header {text!r} is also listed for {other}", text
                )
            lookup[normalize_header(text)] = str(key)
            texts.append(text)
        columns[str(key)] = tuple(texts)
    # A header that is a canonical field name matches that field (unless an alias claims it).
    for name_ in field_names:
        lookup.setdefault(normalize_header(name_), name_)
    return Mapping(
        name=name,
        kind=kind.name,
        channel=channel,
        description=description,
        money_unit=money_unit,
        defaults=defaults,
        columns=columns,
        origin=origin,
        _lookup=lookup,
    )


def _parse_text(text: str, *, origin: str, stem: str | None) -> Mapping:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"mapping {origin}: not valid YAML: {exc}", rule="mapping.invalid", file=origin
        ) from exc
    return parse_mapping(data, origin=origin, stem=stem)


def _workspace_dir(workspace: Path | None) -> Path | None:
    return workspace / "mappings" if workspace is not None else None


def load_mapping(name_or_path: str | Path, workspace: Path | None = None) -> Mapping:
    """A mapping by name (the workspace's `mappings/` first, then the shipped ones) or path."""
    text = str(name_or_path)
    path = Path(text)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or text.endswith((".yaml", ".yml"))
        or ("/" in text or "\\" in text)
    )
    if looks_like_path:
        candidates = [path]
        if not path.is_absolute() and workspace is not None:
            candidates.insert(0, workspace / path)
        for candidate in candidates:
            if candidate.is_file():
                return _parse_text(
                    candidate.read_text(encoding="utf-8"),
                    origin=str(candidate),
                    stem=candidate.stem,
                )
        raise InputError(
            f"mapping file {text} not found", field="mapping", value=text, rule="mapping.not_found"
        )
    local = _workspace_dir(workspace)
    if local is not None:
        for ext in (".yaml", ".yml"):
            candidate = local / f"{text}{ext}"
            if candidate.is_file():
                return _parse_text(
                    candidate.read_text(encoding="utf-8"), origin=str(candidate), stem=text
                )
    shipped = resources.files(MAPPINGS_PACKAGE) / f"{text}.yaml"
    if shipped.is_file():
        return _parse_text(
            shipped.read_text(encoding="utf-8"), origin=f"{MAPPINGS_PACKAGE}/{text}.yaml", stem=text
        )
    known = ", ".join(m.name for m in list_mappings(workspace=workspace)) or "(none)"
    raise InputError(
        f"no mapping named {text!r}; known: {known}",
        field="mapping",
        value=text,
        rule="mapping.not_found",
    )


def _yaml_files(entries: Iterable[Any]) -> list[Any]:
    return sorted(
        (e for e in entries if e.name.endswith((".yaml", ".yml")) and e.is_file()),
        key=lambda e: e.name,
    )


def list_mappings(workspace: Path | None = None) -> list[Mapping]:
    """Every mapping available: the workspace's own first (they shadow shipped ones by name)."""
    found: dict[str, Mapping] = {}
    local = _workspace_dir(workspace)
    if local is not None and local.is_dir():
        for path in _yaml_files(local.iterdir()):
            mapping = _parse_text(
                path.read_text(encoding="utf-8"), origin=str(path), stem=Path(path.name).stem
            )
            found.setdefault(mapping.name, mapping)
    for entry in _yaml_files(resources.files(MAPPINGS_PACKAGE).iterdir()):
        stem = entry.name.rsplit(".", 1)[0]
        mapping = _parse_text(
            entry.read_text(encoding="utf-8"), origin=f"{MAPPINGS_PACKAGE}/{entry.name}", stem=stem
        )
        found.setdefault(mapping.name, mapping)
    return sorted(found.values(), key=lambda m: m.name)
