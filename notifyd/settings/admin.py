"""[admin.tokens] and [audit]: who may call the admin API, what each token may do, and how
long the audit trail of what they did is kept.

http/admin/tokens.py checks a token's scopes against the scope each route declares;
storage/audit.py keeps the trail [audit] keep_days says; readiness.py warns about tokens
written in the old form, which grant every scope.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from notifyd.settings.fields import Section, array, one_of

# What a token may do, each route needing one (docs/admin-api.md lists them per route):
# read: every GET (subscribers, their notices and events, broadcasts, the audit trail);
# subscribers: change a subscriber's details, preferences, consent, import, retry a notice,
# forget an address's bounces; broadcasts: create and cancel broadcasts; privacy: export,
# erase, restrict.
Scope = Literal["read", "subscribers", "broadcasts", "privacy"]
SCOPES: tuple[Scope, ...] = ("read", "subscribers", "broadcasts", "privacy")


def _token_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError("token names are letters, digits, '.', '-' and '_'")
    return name


def _digest(value: object) -> object:
    if isinstance(value, bytes):
        return value
    match = re.fullmatch(r"sha256:([0-9a-fA-F]{64})", value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            'must be "sha256:<64 hex digits>", the SHA-256 of the token, never the token'
        )
    return bytes.fromhex(match[1])


class AdminToken(Section):
    """One token: `[admin.tokens.<name>] digest = "sha256:..."`, `scopes = ["read"]`.

    The old form, `<name> = "sha256:..."` in [admin.tokens], is read as a token with
    `scopes` None: every scope, as every token had before scopes existed, so an upgrade
    locks nobody out (check-config warns about it)."""

    digest: Annotated[bytes, BeforeValidator(_digest)]
    scopes: Annotated[
        tuple[Annotated[Scope, one_of(SCOPES)], ...] | None, BeforeValidator(array)
    ] = Field(description='Among "read", "subscribers", "broadcasts", "privacy".')

    @field_validator("scopes")
    @classmethod
    def _some(cls, value: tuple[Scope, ...] | None) -> tuple[Scope, ...] | None:
        if value is not None and not value:
            raise ValueError("must name at least one scope (a token that can do nothing)")
        return value

    @property
    def every_scope(self) -> bool:
        """Written in the old form: it may do everything."""
        return self.scopes is None

    def grants(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


def _old_form(value: object) -> object:
    """`name = "sha256:..."`: a token with every scope. A wrong digest is reported under
    the name, where the file has it."""
    if isinstance(value, str):
        return {"digest": _digest(value), "scopes": None}
    if not isinstance(value, dict | AdminToken):
        raise ValueError('must be "sha256:<64 hex digits>" or a table with digest and scopes')
    return value


class AdminSettings(Section):
    tokens: Mapping[
        Annotated[str, AfterValidator(_token_name)],
        Annotated[AdminToken, BeforeValidator(_old_form)],
    ] = Field(
        default_factory=dict,
        repr=False,
        examples=[
            {
                "auditor": {"digest": "sha256:<64 hex digits>", "scopes": ["read"]},
                "support": {
                    "digest": "sha256:<64 hex digits>",
                    "scopes": ["read", "subscribers"],
                },
            }
        ],
        description="Admin API bearer tokens (docs/admin-api.md), one table each: "
        '[admin.tokens.<name>] with digest = "sha256:<hex SHA-256 of the token>" and scopes, '
        'among "read", "subscribers", "broadcasts", "privacy". Only the digest is stored '
        "here; remove a token and reload to revoke it. The old form, <name> = "
        '"sha256:<hex>" in [admin.tokens], still works and grants every scope (check-config '
        "warns).",
    )


class AuditSettings(Section):
    """The audit trail (table `audit`, docs/privacy.md): who changed what, never personal
    data."""

    keep_days: int = Field(
        730,
        ge=1,
        le=36500,
        description="Audit rows older than this many days are deleted by the retention job "
        "(query purge_audit), and so are the records of erasures finished that long ago "
        "(purge_erasures; the hashes keeping erased addresses off marketing stay). "
        "Default: 2 years.",
    )
