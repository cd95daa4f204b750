"""Roles and permissions: the one table of who may do what.

Every API route declares one `Permission` (or is explicitly public / collector); the
authorisation matrix test checks every route against `ROLE_PERMISSIONS`.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # runs the platform: users, keys, sources, imports
    MARKETER = "marketer"  # 会员运营: tags, audiences, journeys; masked personal data only
    CONSULTANT = "consultant"  # 咨询师/前台: unmasked contact data of their store's members
    ANALYST = "analyst"  # aggregates and masked rows
    COMPLIANCE = "compliance"  # 合规: consents, audit, data-subject requests


class Permission(StrEnum):
    SESSION_SELF = "session.self"  # who am I, log out
    USERS_MANAGE = "users.manage"
    API_KEYS_MANAGE = "api_keys.manage"
    ENCRYPTION_KEYS_MANAGE = "encryption_keys.manage"
    SOURCES_READ = "sources.read"
    SOURCES_MANAGE = "sources.manage"
    DATA_IMPORT = "data.import"
    QUALITY_READ = "quality.read"
    PERSONAL_DATA_MASKED = "personal_data.read_masked"
    PERSONAL_DATA_UNMASKED = "personal_data.read_unmasked"  # still scoped and purpose-bound
    AGGREGATES_READ = "aggregates.read"
    TAGS_MANAGE = "tags.manage"
    AUDIENCES_MANAGE = "audiences.manage"
    JOURNEYS_MANAGE = "journeys.manage"
    EXPORT = "data.export"
    CONSENT_READ = "consent.read"
    CONSENT_WRITE = "consent.write"
    CONSENT_CHECK = "consent.check"  # ask may(member, purpose, channel)
    AUDIT_READ = "audit.read"
    DATA_SUBJECT_REQUESTS = "data_subject_requests.manage"


_EVERYONE = {Permission.SESSION_SELF, Permission.PERSONAL_DATA_MASKED}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MARKETER: frozenset(
        _EVERYONE
        | {
            Permission.AGGREGATES_READ,
            Permission.TAGS_MANAGE,
            Permission.AUDIENCES_MANAGE,
            Permission.JOURNEYS_MANAGE,
            Permission.EXPORT,
            Permission.CONSENT_CHECK,
        }
    ),
    Role.CONSULTANT: frozenset(
        _EVERYONE | {Permission.PERSONAL_DATA_UNMASKED, Permission.CONSENT_CHECK}
    ),
    Role.ANALYST: frozenset(
        _EVERYONE | {Permission.AGGREGATES_READ, Permission.QUALITY_READ, Permission.SOURCES_READ}
    ),
    Role.COMPLIANCE: frozenset(
        _EVERYONE
        | {
            Permission.PERSONAL_DATA_UNMASKED,
            Permission.CONSENT_READ,
            Permission.CONSENT_WRITE,
            Permission.CONSENT_CHECK,
            Permission.AUDIT_READ,
            Permission.DATA_SUBJECT_REQUESTS,
        }
    ),
}


def role_may(role: Role | str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]
