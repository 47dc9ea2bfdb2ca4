"""[smtp.streams.marketing] and [smtp] sender_names: how marketing mail leaves apart from
transactional mail, and the From display name in each subscriber's language.

Large mailbox providers (Gmail's and Yahoo's sender guidelines) judge a sender's reputation
by domain and IP and ask bulk senders to keep marketing apart from transactional mail: a
complaint about an offer must not send a password-change notice to spam. So the marketing
stream may have its own sender, bounce domain, relay and credentials; each key it leaves
out is [smtp]'s. service.py's SmtpSettings holds these and merges them (`stream`);
delivery/send.py picks a notice's stream by its category.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from notifyd.catalogue.locale import LANGUAGES
from notifyd.settings.fields import Section, existing, mailbox, one_of

SMTP_SECURITY = ("none", "starttls", "tls")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")

# The streams a notice may leave by; every notice not of the marketing stream is transactional.
TRANSACTIONAL = "transactional"
MARKETING = "marketing"
STREAMS = (TRANSACTIONAL, MARKETING)


def stream_of(category: str, kind: str, marketing_kinds: Collection[str]) -> str:
    """The stream of a notice: marketing for offers and `marketing_kinds`. (The claim's
    statement, notices.sql claim_due, says the same in SQL.)"""
    return MARKETING if category == MARKETING or kind in marketing_kinds else TRANSACTIONAL


def a_domain(value: str) -> str:
    """A bounce domain as sent in MAIL FROM: the A-label form of an internationalised one,
    lower case; "" passes (unset)."""
    if not value:
        return value
    try:
        ascii_form = value.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"is not a domain name: {value!r}") from None
    if not _DOMAIN.fullmatch(ascii_form):
        raise ValueError(f"is not a domain name: {value!r}")
    return ascii_form


def display_names(value: Mapping[str, str]) -> Mapping[str, str]:
    """Display names by language: a language notifyd writes in, a name on one line."""
    for language, name in value.items():
        if language not in LANGUAGES:
            raise ValueError(f"{language!r} is not a language of notices ({', '.join(LANGUAGES)})")
        if not name.strip() or any(c in name for c in '\r\n<>"@\\'):
            raise ValueError(f'the {language} name must be one line without <, >, ", \\ or @')
    return value


def _mailbox_if_set(value: str | None) -> str | None:
    return value if value is None else mailbox(value)


SenderNames = Annotated[Mapping[str, str], AfterValidator(display_names)]

SENDER_NAMES_HELP = (
    "The From display name by the notice's language (ro, en), e.g. "
    '{ ro = "Notificări Exemplu", en = "Example Notifications" }; a language left out keeps '
    "the sender's own display name. The address is always the sender's."
)


class StreamSettings(Section):
    """One stream's own keys; each one left out is [smtp]'s."""

    host: str | None = Field(None, description="Its relay; unset: [smtp] host.")
    port: int | None = Field(None, ge=1, le=65535)
    security: Annotated[Literal["none", "starttls", "tls"] | None, one_of((*SMTP_SECURITY,))] = None
    username: str | None = None
    password: str | None = Field(None, repr=False, validate_default=True)
    sender: Annotated[str | None, AfterValidator(_mailbox_if_set)] = Field(
        None, description="From: of this stream's mail (a domain of its own)."
    )
    sender_names: SenderNames | None = Field(None, description=SENDER_NAMES_HELP)
    reply_to: str | None = None
    bounce_domain: str | None = Field(
        None, description="The VERP bounce domain of this stream's envelope senders."
    )
    verify_tls: bool | None = None
    ca_file: Annotated[Path | None, BeforeValidator(existing("file"))] = None
    pool_size: int | None = Field(None, ge=1, le=100)
    timeout_seconds: float | None = Field(None, ge=0.1, le=600)
    policy_changes: bool = Field(
        False,
        description="true: notice.policy_changed broadcasts leave by this stream too "
        "(they are mandatory service notices, transactional unless this says otherwise).",
    )

    @field_validator("bounce_domain")
    @classmethod
    def _a_domain(cls, value: str | None) -> str | None:
        return value if value is None else a_domain(value)

    @field_validator("password")
    @classmethod
    def _set_with_username(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("username") and not value:
            raise ValueError("is empty but this stream's username is set")
        return value

    def overrides(self) -> dict[str, object]:
        """The [smtp] keys this stream sets."""
        return {
            key: value
            for key, value in self.model_dump().items()
            if value is not None and key != "policy_changes"
        }


def stream_names(value: Mapping[str, StreamSettings]) -> Mapping[str, StreamSettings]:
    for name in value:
        if name != MARKETING:
            raise ValueError(f"{name!r} is not a stream: only [smtp.streams.marketing] is")
    return value
