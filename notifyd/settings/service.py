"""[daemon], [database], [smtp], [templates], [dkim] and [logging]: how this process runs,
what it talks to and how it writes; where it listens is listeners.py's ([http])."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from notifyd.settings.fields import (
    Env,
    Section,
    TablesOf,
    distinct,
    existing,
    folder_path,
    link_keys,
    mailbox,
    not_empty,
    one_of,
)
from notifyd.settings.streams import (
    MARKETING,
    SENDER_NAMES_HELP,
    SMTP_SECURITY,
    TRANSACTIONAL,
    SenderNames,
    StreamSettings,
    a_domain,
    stream_names,
    stream_of,
)

_LOCAL_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
# At most this many SMTP connections, opened as the load needs them. Each carries one message
# per round trip to the relay plus the commit of the last one's outcome (the crash bound in
# docs/delivery.md), so under load delivery is about connections: 4 delivered 400 missed
# calls a second while ingesting them, 32 kept up with 791 (bench/e2e_latency.py).
SMTP_CONNECTIONS = 32


class DaemonSettings(Section):
    state_dir: Annotated[Path, BeforeValidator(folder_path)] = Field(
        default="var",
        validate_default=True,
        examples=["/var/lib/notifyd"],
        description="Holds the embedded PostgreSQL (pgdata/) when [database] url is empty, "
        "and the .eml outbox (outbox/) when [smtp] host is empty.",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        le=600,
        description="On SIGTERM: seconds to let SMTP transactions in flight finish before exiting.",
    )
    instance: str = Field(
        "",
        validate_default=True,
        description='Name of this host in notice claims and logs; empty: "<hostname>:<pid>".',
    )
    link_secret: Annotated[
        tuple[Annotated[str, AfterValidator(not_empty)], ...],
        Env("NOTIFYD_LINK_SECRET"),
        BeforeValidator(link_keys),
        AfterValidator(distinct),
    ] = Field(
        (),
        repr=False,
        description="The keys that seal the links in emails (unsubscribe, preferences) and "
        "the pages' form tokens: a string (one key) or an array (rotation: the first seals, "
        "every one opens, so links sealed with an older key open until they expire; drop a "
        "key once [links] unsubscribe_days have passed). Removing or losing every key that "
        "sealed a link breaks it. Hosts sharing a database must share them; empty: a key is "
        "generated once and kept in state_dir/link-secret (back that file up).",
    )

    @field_validator("instance")
    @classmethod
    def _host_and_pid_unless_named(cls, value: str) -> str:
        return value or f"{socket.gethostname()}:{os.getpid()}"


def _postgres_url(value: str) -> str:
    if value == "" or value.startswith(("postgresql://", "postgres://")):
        return value
    raise ValueError("must be empty (embedded PostgreSQL) or a postgresql:// URL")


class DatabaseSettings(Section):
    url: Annotated[str, Env("NOTIFYD_DATABASE_URL"), AfterValidator(_postgres_url)] = Field(
        "",
        description="Empty: an embedded PostgreSQL in state_dir/pgdata (needs the `embedded` "
        "extra). Keep passwords out of this file: set the URL in the environment instead.",
    )
    pool_min: int = Field(2, ge=1, le=100)
    pool_max: int = Field(10, ge=1, le=500)
    connect_timeout_seconds: float = Field(5.0, ge=0.1, le=120)
    statement_timeout_seconds: float = Field(30.0, ge=0.1, le=3600)

    @field_validator("pool_max")
    @classmethod
    def _at_least_pool_min(cls, value: int, info: ValidationInfo) -> int:
        pool_min = info.data.get("pool_min")
        if pool_min is not None and value < pool_min:
            raise ValueError(f"must be at least pool_min ({pool_min}), got {value}")
        return value


class SmtpSettings(Section):
    host: str = Field(
        "",
        description="Empty: emails are written as .eml files to state_dir/outbox instead of "
        "being sent.",
    )
    port: int = Field(25, ge=1, le=65535)
    security: Annotated[Literal["none", "starttls", "tls"], one_of(SMTP_SECURITY)] = Field(
        "none", description='"none" | "starttls" | "tls" (implicit TLS, usually port 465)'
    )
    username: str = ""
    password: Annotated[str, Env("NOTIFYD_SMTP_PASSWORD")] = Field(
        "", repr=False, validate_default=True, description="Prefer the environment."
    )
    sender: Annotated[str, AfterValidator(mailbox)] = Field(
        "notifyd <notifyd@localhost>",
        examples=["Notificări <notificari@example.com>"],
        description="From: and envelope sender.",
    )
    sender_names: SenderNames = Field(
        default_factory=dict,
        examples=[{"ro": "Notificări Exemplu", "en": "Example Notifications"}],
        description=SENDER_NAMES_HELP,
    )
    timeout_seconds: float = Field(30.0, ge=0.1, le=600)
    pool_size: int = Field(
        SMTP_CONNECTIONS,
        ge=1,
        le=100,
        description="At most this many SMTP connections, opened as needed and reused.",
    )
    verify_tls: bool = Field(
        True,
        description="false only for a loopback relay with a self-signed certificate.",
    )
    ca_file: Annotated[Path | None, BeforeValidator(existing("file"))] = Field(
        None,
        description="PEM bundle of a private CA that signed the relay's certificate; "
        "empty: the system's CAs.",
    )
    reply_to: str = Field(
        "", description="Reply-To: for subscribers who answer a notice (e.g. support)."
    )
    bounce_domain: str = Field(
        "",
        examples=["bounces.example.com"],
        description="Set: each message's envelope sender is bounce_local_part+<token>@ this "
        "domain (VERP), so a bounce or complaint maps to its notice (route the domain to "
        "contrib/postfix/notifyd-bounce, docs/integrations.md). Empty: the sender's address.",
    )
    bounce_local_part: str = Field(
        "bounce",
        description="The local part of the per-notice envelope sender, before '+<token>'.",
    )

    streams: Annotated[
        Mapping[str, StreamSettings], AfterValidator(stream_names), TablesOf("stream")
    ] = Field(
        default_factory=dict,
        examples=[
            {
                "marketing": {
                    "sender": "Oferte Exemplu <oferte@news.example.com>",
                    "bounce_domain": "bounces.news.example.com",
                    "host": "marketing-relay.example.com",
                    "port": 587,
                    "security": "starttls",
                }
            }
        ],
        description="[smtp.streams.marketing]: offers (and, with policy_changes = true, "
        "policy-change broadcasts) leave with their own sender, bounce domain and, if set, "
        "relay and credentials; any key left out is [smtp]'s. Unset: they leave like all "
        "other mail. Every message names its stream in X-Notifyd-Stream (docs/delivery.md).",
    )

    @field_validator("bounce_domain")
    @classmethod
    def _a_domain(cls, value: str) -> str:
        return a_domain(value)

    @field_validator("bounce_local_part")
    @classmethod
    def _a_local_part(cls, value: str) -> str:
        # No '+': it separates the token; lower case, since some relays fold local parts.
        if not _LOCAL_PART.fullmatch(value):
            raise ValueError("must be 1-32 lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("reply_to")
    @classmethod
    def _a_mailbox_if_set(cls, value: str) -> str:
        return mailbox(value) if value else value

    @field_validator("password")
    @classmethod
    def _set_with_username(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("username") and not value:
            raise ValueError("is empty but username is set (or set NOTIFYD_SMTP_PASSWORD)")
        return value

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    def stream(self, name: str) -> SmtpSettings:
        """The settings `name`'s mail leaves with: [smtp] with the stream's own keys. A
        stream with a sender of its own and no sender_names shows its sender's name."""
        own = self.streams.get(name) if name != TRANSACTIONAL else None
        if own is None:
            return self
        names: dict[str, object] = (
            {"sender_names": {}} if own.sender and own.sender_names is None else {}
        )
        return self.model_copy(update={**names, **own.overrides(), "streams": {}})

    def stream_of(self, category: str, kind: str) -> str:
        """The stream a notice of this category and kind belongs to: offers are marketing,
        and so are policy-change broadcasts where the marketing stream says so."""
        return stream_of(category, kind, self.marketing_kinds)

    @property
    def marketing_kinds(self) -> tuple[str, ...]:
        """The kinds of notices outside the marketing category that are marketing mail."""
        marketing = self.streams.get(MARKETING)
        return ("notice.policy_changed",) if marketing and marketing.policy_changes else ()

    @property
    def relay(self) -> tuple[object, ...]:
        """What makes a connection pool: streams with equal ones share one."""
        return (
            self.host,
            self.port,
            self.security,
            self.username,
            self.password,
            self.timeout_seconds,
            self.pool_size,
            self.verify_tls,
            self.ca_file,
        )

    @property
    def bounce_domains(self) -> tuple[str, ...]:
        """Every stream's bounce domain: a bounce address in any of them is ours."""
        domains = [self.bounce_domain, *(s.bounce_domain or "" for s in self.streams.values())]
        return tuple(dict.fromkeys(d for d in domains if d))


class TemplateSettings(Section):
    folder: Annotated[Path | None, BeforeValidator(existing("folder"))] = Field(
        None,
        description="A folder whose <kind>.<lang>.txt / .html files replace the packaged ones "
        "(see docs/templates.md). Checked with sample data at start and on reload.",
    )


class DkimSettings(Section):
    """DKIM signing of every notice (optional): publish the public key as
    <selector>._domainkey.<domain> TXT "v=DKIM1; k=rsa; p=..." (`notifyd test-email`
    prints the records). An RSA key, and optionally an Ed25519 key to sign with both."""

    domain: str = Field("", description='e.g. "voip.example"')
    selector: str = Field("", description='e.g. "notifyd1"')
    private_key_file: Annotated[Path | None, BeforeValidator(existing("file"))] = Field(
        None,
        description='e.g. "/etc/notifyd/dkim.pem"; empty: notices are not signed.',
    )

    ed25519_selector: str = Field(
        "",
        description='e.g. "notifyd1e": the selector of ed25519_key_file\'s record (not selector)',
    )
    ed25519_key_file: Annotated[Path | None, BeforeValidator(existing("file"))] = Field(
        None,
        description='e.g. "/etc/notifyd/dkim-ed25519.pem": an Ed25519 key; every notice then '
        "carries a second signature, Ed25519-SHA256 (RFC 8463), beside the RSA one. "
        'Publish <ed25519_selector>._domainkey.<domain> TXT "v=DKIM1; k=ed25519; p=...".',
    )

    @field_validator("private_key_file")
    @classmethod
    def _named_by_domain_and_selector(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and not (info.data.get("domain") and info.data.get("selector")):
            raise ValueError("is set but domain or selector is empty")
        return value

    @field_validator("ed25519_key_file")
    @classmethod
    def _beside_the_rsa_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # Dual-signing only: receivers that know no Ed25519 (RFC 8463 is young) check RSA.
        if value is not None and info.data.get("private_key_file") is None:
            raise ValueError("is set but private_key_file is not: Ed25519 signs beside RSA")
        selector = info.data.get("ed25519_selector")
        if value is not None and not selector:
            raise ValueError("is set but ed25519_selector is empty")
        if value is not None and selector == info.data.get("selector"):
            raise ValueError("needs its own ed25519_selector: one selector publishes one key")
        return value

    @property
    def enabled(self) -> bool:
        return self.private_key_file is not None


class LoggingSettings(Section):
    level: Annotated[str, one_of(LOG_LEVELS)] = Field(
        "info", description='"debug" | "info" | "warning" | "error"'
    )
    format: Annotated[Literal["json", "console"], one_of(LOG_FORMATS)] = Field(
        "json", description='"json" (one event per line) | "console"'
    )
