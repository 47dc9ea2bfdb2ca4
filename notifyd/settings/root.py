"""The whole file: Settings, and load() that reads it with the environment's overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ValidationError, model_validator

from notifyd.settings.admin import AdminSettings, AuditSettings
from notifyd.settings.branding import BrandingSettings
from notifyd.settings.delivery import (
    IN_FLIGHT_PER_CONNECTION,
    AttachmentSettings,
    CallbackSenderSettings,
    DeliverySettings,
)
from notifyd.settings.fields import Env, Section, TablesOf, section
from notifyd.settings.intake import (
    BroadcastSettings,
    CallSettings,
    DefaultsSettings,
    SourceSettings,
    Thresholds,
    WebhookSettings,
    currency_code,
    source_name,
)
from notifyd.settings.lines import lines_of
from notifyd.settings.links import LinkSettings
from notifyd.settings.listeners import HttpSettings
from notifyd.settings.privacy import PrivacySettings
from notifyd.settings.problems import ConfigError, problems_of
from notifyd.settings.retention import RetentionSettings
from notifyd.settings.service import (
    DaemonSettings,
    DatabaseSettings,
    DkimSettings,
    LoggingSettings,
    SmtpSettings,
    TemplateSettings,
)
from notifyd.settings.statements import StatementSettings


class Settings(Section):
    """Every section of the file, in the order config/notifyd.example.toml shows them;
    `path` is the file's (not a key in it)."""

    path: Path
    daemon: DaemonSettings = section()
    http: HttpSettings = section()
    links: LinkSettings = section()
    database: DatabaseSettings = section()
    smtp: SmtpSettings = section()
    sources: Annotated[
        Mapping[Annotated[str, AfterValidator(source_name)], SourceSettings], TablesOf("name")
    ] = section()
    defaults: DefaultsSettings = section()
    webhooks: WebhookSettings = section()
    delivery: DeliverySettings = section()
    callbacks: CallbackSenderSettings = section()
    thresholds: Annotated[
        Mapping[Annotated[str, AfterValidator(currency_code)], Thresholds], TablesOf("CURRENCY")
    ] = section()
    calls: CallSettings = section()
    attachments: AttachmentSettings = section()
    templates: TemplateSettings = section()
    branding: BrandingSettings = section()
    dkim: DkimSettings = section()
    admin: AdminSettings = section()
    audit: AuditSettings = section()
    broadcasts: BroadcastSettings = section()
    privacy: PrivacySettings = section()
    retention: RetentionSettings = section()
    statements: StatementSettings = section()
    logging: LoggingSettings = section()

    @model_validator(mode="after")
    def _in_flight_follows_the_connections(self) -> Settings:
        """[delivery] concurrency, when the file leaves it out, is a share of [smtp]
        pool_size."""
        if "concurrency" not in self.delivery.model_fields_set:
            concurrency = IN_FLIGHT_PER_CONNECTION * self.smtp.pool_size
            # Frozen: set once, here, while the object is being made.
            object.__setattr__(
                self, "delivery", self.delivery.model_copy(update={"concurrency": concurrency})
            )
        return self

    @property
    def templates_folder(self) -> Path | None:
        return self.templates.folder

    @property
    def company(self) -> str:
        """The provider's name as pages and emails show it: [branding] company_name, else the
        display name of [smtp] sender, else its domain."""
        if self.branding.company_name:
            return self.branding.company_name
        display, _ = parseaddr(self.smtp.sender)
        return display or self.message_domain

    @property
    def message_domain(self) -> str:
        """The right-hand side of the Message-IDs notifyd writes: the sender's domain."""
        return self.smtp.sender_address.rpartition("@")[2] or "notifyd.invalid"

    @property
    def outbox_dir(self) -> Path:
        return self.daemon.state_dir / "outbox"

    @property
    def pgdata_dir(self) -> Path:
        return self.daemon.state_dir / "pgdata"


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError listing every problem."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        text = path.read_bytes().decode("utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(path, [("file", "does not exist")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [("syntax", str(error))]) from None
    except UnicodeDecodeError as error:
        # An editor in Latin-1/2 or Windows-1250: a crash at start, or a reload that never
        # ends (systemd waits for READY=1), for what is the operator's to fix in one save.
        raise ConfigError(path, [("file", _not_utf8(error))]) from None
    except OSError as error:
        raise ConfigError(path, [("file", f"cannot be read: {error.strerror}")]) from None
    try:
        return from_mapping(raw, path, env)
    except ConfigError as error:
        # "[delivery] pol_seconds: unknown key (line 42)": the operator goes to the line.
        raise ConfigError(path, error.problems, lines_of(text, error.problems)) from None


def _not_utf8(error: UnicodeDecodeError) -> str:
    """Where the first byte that is not UTF-8 is, as an editor counts: line and column."""
    before = error.object[: error.start].decode("utf-8", errors="replace")
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")  # rfind is -1 on the first line: column 1 is 1
    return f"is not UTF-8 text (TOML must be): line {line}, column {column}; save it as UTF-8"


def from_mapping(raw: Mapping[str, Any], path: Path, env: Mapping[str, str]) -> Settings:
    """Settings from the file's tables, `env` overriding the keys that name a variable."""
    problems = [("[path]", "unknown section")] if "path" in raw else []
    raw, moved = moved_keys(raw)
    problems += moved
    tables, from_env = with_environment(raw, env)
    try:
        settings = Settings.model_validate(
            {**tables, "path": path}, context={"base_dir": path.resolve().parent}
        )
    except ValidationError as error:
        problems += problems_of(error, Settings, from_env)
    if problems:
        raise ConfigError(path, problems)
    return settings


def moved_keys(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[tuple[str, str]]]:
    """The file's tables with keys from before their section existed moved to it, so an
    older file still means what it meant: [attachments] keep_days is [retention]
    payload_days. Both set is a problem (which one would count?)."""
    attachments, retention = raw.get("attachments"), raw.get("retention", {})
    if not isinstance(attachments, dict) or "keep_days" not in attachments:
        return raw, []
    attachments = dict(attachments)
    keep_days = attachments.pop("keep_days")
    if not isinstance(retention, dict) or "payload_days" in retention:
        moved = "moved to [retention] payload_days: set only that"
        return {**raw, "attachments": attachments}, [("[attachments] keep_days", moved)]
    retention = {**retention, "payload_days": keep_days}
    return {**raw, "attachments": attachments, "retention": retention}, []


def environment_keys() -> Iterator[tuple[str, str, str]]:
    """(section, key, variable) for every key that an environment variable overrides."""
    for name, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for key, field in model.model_fields.items():
                for marker in field.metadata:
                    if isinstance(marker, Env):
                        yield name, key, marker.name


def with_environment(
    raw: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The file's tables with each overridable key the environment sets (not empty) replaced,
    and which keys that was, for the problems to name the variable."""
    tables = dict(raw)
    used: dict[tuple[str, ...], str] = {}
    for name, key, variable in environment_keys():
        value = env.get(variable)
        table = tables.get(name, {})
        if value and isinstance(table, dict):
            tables[name] = {**table, key: value}
            used[(name, key)] = variable
    return tables, used


def callback_sources(settings: Settings) -> tuple[str, ...]:
    """The sources told what became of their events' notices ([sources.<name>.callback])."""
    return tuple(sorted(name for name, s in settings.sources.items() if s.callback is not None))
