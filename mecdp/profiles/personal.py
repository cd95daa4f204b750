"""The one place the profile area turns stored personal values into plain ones and back.

Privacy phase B encrypts ``contacts.name`` (AES-GCM token, ``e1:...``) and stores phone and
email identifiers as blind indexes with the token beside them (``id_value_enc``); the
`mecdp.privacy.vault` helpers read them back inside the service. This module is the only
code of `mecdp.profiles` / `mecdp.console` that knows about it:

* `normalise`: a typed identifier in the cleaning stage's normal form (OneID's `resolve`
  turns a plain phone/email into its blind index itself);
* `lookup_values`: what ``profiles.name_key`` may hold for a typed name (the name, and its
  blind index when the vault is available);
* `reveal`: a stored value (token or plain) as plain text;
* `reveal_identifier`: the plain value of a stored identifier row.

Values that are not tokens pass through, so workspaces written before and after phase B
both read correctly.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from mecdp.config import Settings

TOKEN_PREFIX = "e1:"  # noqa: S105 - the prefix of an encrypted value, not a secret
CTX_NAME = "contacts.name"
CTX_IDENTIFIER = "record_identifiers.id_value"
ENCRYPTED_ID_TYPES = ("phone", "email")
BLINDED_TYPES = ("name",)  # compared by blind index once encrypted


@cache
def _vault_module() -> Any:
    try:
        return importlib.import_module("mecdp.privacy.vault")
    except ImportError:  # pragma: no cover - before privacy phase B
        return None


_VAULTS: dict[tuple[str, str | None, str | None], Any] = {}


def _vault(settings: Settings) -> Any:
    """The workspace vault; None before phase B or in a workspace without a key ring.

    Kept per workspace here: `vault_for` resolves the workspace path on every call (file
    system calls that cost more than the decryption on the lookup path)."""
    key = (str(settings.workspace), settings.data_keys, settings.secret_key)
    found = _VAULTS.get(key)
    if found is not None:
        return found
    module = _vault_module()
    if module is None:
        return None
    try:
        found = _VAULTS[key] = module.vault_for(settings)
    except OSError:
        return None
    return found


def normalise(id_type: str, value: str) -> str:
    """The cleaning stage's normal form of a typed identifier (phones to E.164)."""
    value = value.strip()
    if id_type == "phone":
        from mecdp.clean.rules import phone_to_e164

        return phone_to_e164(value) or value
    if id_type == "email":
        return value.lower()
    return value


def lookup_values(settings: Settings, id_type: str, value: str) -> list[str]:
    """The stored forms a typed value may have (plain, and blind index for names)."""
    plain = normalise(id_type, value)
    found = [plain]
    if id_type in BLINDED_TYPES:
        vault = _vault(settings)
        if vault is not None:
            found.append(str(vault.bidx(id_type, plain)))
    return found


def stored_identifier(settings: Settings, id_type: str, value: str) -> list[str]:
    """The forms ``identity_oneid.id_value`` may hold for a typed identifier: the normalised
    value, and for phone/email its blind index when the workspace has a key ring (the store
    keeps those as blind indexes once encrypted)."""
    plain = normalise(id_type, value)
    found = [plain]
    if id_type in ENCRYPTED_ID_TYPES:
        vault = _vault(settings)
        if vault is not None:
            found.append(str(vault.bidx(id_type, plain)))
    return found


def reveal(settings: Settings, stored: str | None, context: str = CTX_NAME) -> str | None:
    """A stored value as plain text (tokens decrypted; None when it cannot be read)."""
    if stored is None or not stored.startswith(TOKEN_PREFIX):
        return stored
    vault = _vault(settings)
    if vault is None:
        return None
    plain: str | None = vault.open_or_none(stored, context)
    return plain


def reveal_identifier(settings: Settings, id_value: str, id_value_enc: str | None) -> str:
    """The plain value of an identifier row (the token when there is one, else the value)."""
    if id_value_enc:
        plain = reveal(settings, id_value_enc, CTX_IDENTIFIER)
        if plain is not None:
            return plain
    return id_value
