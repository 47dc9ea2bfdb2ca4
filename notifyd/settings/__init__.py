"""Settings: the TOML file plus NOTIFYD_* environment, read into frozen dataclasses.

Every problem is reported with the file, the key and what is wrong, all at once, so an
admin fixes a config in one pass. Unknown keys are errors: a typo such as `prot = 25`
must not silently fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from notifyd.catalogue.fetch_allowlist import parse_entry
from notifyd.catalogue.locale import LANGUAGES, check_timezone
from notifyd.model import MODES, QuietHours, parse_quiet_hours, parse_time_of_day

SMTP_SECURITY = ("none", "starttls", "tls")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Categories whose default mode the admin may set (security and service are mandatory).
DEFAULT_MODE_CATEGORIES = ("calls", "voicemail", "fax", "billing", "low_credit", "marketing")
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """The configuration file cannot be used; `problems` lists every key that is wrong."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {key}: {message}" for key, message in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path
    shutdown_grace_seconds: float = 10.0
    # Names this process in claims and logs; defaults to host name and pid.
    instance: str = ""
    # Signs the links in emails (unsubscribe); empty: one kept in state_dir/link-secret.
    link_secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Where subscribers reach this daemon (links in emails); empty: http://host:port.
    public_url: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "notifyd <notifyd@localhost>"
    timeout_seconds: float = 30.0
    # At most this many connections, opened as the load needs them. Each carries one message
    # per round trip to the relay plus the commit of the last one's outcome (the crash bound
    # in docs/delivery.md), so under load delivery is about connections: 4 delivered 400
    # missed calls a second while ingesting them, 32 kept up with 791 (bench/e2e_latency.py).
    pool_size: int = 32
    # Verify the relay's certificate; off only for a relay on loopback with a self-signed one.
    verify_tls: bool = True
    # CA bundle for a relay whose certificate comes from a private CA; empty: system CAs.
    ca_file: Path | None = None
    reply_to: str = ""

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]


@dataclass(frozen=True)
class SourceSettings:
    name: str
    secrets: tuple[str, ...] = field(repr=False)
    allow_from: tuple[IPNetwork, ...] | None = None


@dataclass(frozen=True)
class DefaultsSettings:
    language: str = "ro"
    timezone: str = "Europe/Bucharest"
    quiet_hours: QuietHours | None = QuietHours(time(22, 0), time(8, 0))
    # Category -> mode for subscribers who did not choose ("immediate" when absent).
    modes: Mapping[str, str] = field(default_factory=dict)
    # Local time at which daily digests go out.
    digest_time: time = time(8, 0)


@dataclass(frozen=True)
class WebhookSettings:
    timestamp_tolerance_seconds: int = 300
    idempotency_days: int = 7
    max_body_bytes: int = 25 * 1024 * 1024
    # Bodies being read or worked on, all requests together: past it a webhook gets 503
    # before its body is read. The memory they take is a few times this (text, parsed JSON,
    # decoded attachments).
    max_bytes_in_flight: int = 100 * 1024 * 1024


HOUR = 3600.0
# A missed call a day later is noise; a security notice is not.
DEFAULT_LIFETIMES = {
    "calls": 24 * HOUR,
    "voicemail": 5 * 24 * HOUR,
    "fax": 5 * 24 * HOUR,
    "billing": 5 * 24 * HOUR,
    "low_credit": 2 * 24 * HOUR,
    "marketing": 2 * 24 * HOUR,
    "service": 5 * 24 * HOUR,
    "security": 5 * 24 * HOUR,
}


@dataclass(frozen=True)
class DeliverySettings:
    # Notices in flight: more than the SMTP connections, so that while some are sent others
    # are claimed, rendered and recorded (8 left 4 connections idle half the time: delivery
    # 0.55x -> 0.71x of aiosmtplib with 32, bench/delivery.py). The file's default is two
    # for each of `[smtp] pool_size`: one waiting for its reply and record, one written
    # behind it.
    concurrency: int = 64
    batch_size: int = 50
    lease_seconds: float = 30.0
    poll_seconds: float = 5.0
    # Postfix's defaults: first retry after 5 minutes, doubling to at most ~67 minutes apart,
    # give up after 5 days.
    retry_initial_seconds: float = 300.0
    retry_max_seconds: float = 4000.0
    retry_lifetime_seconds: float = 5 * 24 * 3600.0
    # Per category, how long a notice is still worth sending; past it the notice goes to the
    # dead letters (state failed, reason "expired"). Unlisted: retry_lifetime_seconds.
    lifetimes: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LIFETIMES))
    # Emails per subscriber, category and hour; the surplus waits for the next digest.
    hourly_cap: int = 20
    # Hard bounces (5xx to RCPT/DATA) after which an address is marked undeliverable.
    bounce_limit: int = 3
    # Consecutive 5xx answers, for different addresses, that mean the relay refuses
    # everything (a wrong password): delivery pauses instead of failing every notice.
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 60.0
    # Messages per second per recipient domain (0: no limit); per-domain overrides.
    domain_rate: float = 0.0
    domain_rates: Mapping[str, float] = field(default_factory=dict)

    def lifetime(self, category: str) -> float:
        return self.lifetimes.get(category, self.retry_lifetime_seconds)


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: Literal["json", "console"] = "json"


@dataclass(frozen=True)
class Thresholds:
    """Low-credit thresholds for one currency (SPEC §5)."""

    low: Decimal
    critical: Decimal
    hysteresis: Decimal = Decimal(0)


@dataclass(frozen=True)
class CallSettings:
    # A missed call marked to_voicemail waits this long for the voicemail of the same call.
    voicemail_wait_seconds: float = 120.0
    # Missed calls within this long of the last missed-call email are gathered into one
    # follow-up email at the end of the window (0: every call its own email).
    burst_window_seconds: float = 300.0


@dataclass(frozen=True)
class AttachmentSettings:
    max_bytes: int = 20 * 1024 * 1024  # accepted per attachment
    max_email_bytes: int = 10 * 1024 * 1024  # attached to an email; larger ones are linked
    # Names, IPs and CIDRs, each with an optional port; see notifyd.catalogue.fetch_allowlist
    # for the addresses only an IP/CIDR entry here opens (loopback, metadata, ...).
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_timeout_seconds: float = 30.0
    fetch_attempts: int = 5
    # First wait before fetching again, doubling (5, 10, 20, 40 s): a voicemail should not
    # wait minutes for a PBX file server that hiccuped.
    fetch_retry_seconds: float = 5.0
    keep_days: int = 30  # bytes kept after delivery, then cleared
    portal_url: str = ""  # where a subscriber finds what could not be attached
    # A TIFF fax is refused past these, checked before it is decoded (attachments.PageLimits).
    max_pages: int = 100
    max_pixels: int = 25_000_000  # a page


@dataclass(frozen=True)
class DkimSettings:
    domain: str = ""
    selector: str = ""
    private_key_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.private_key_file is not None


@dataclass(frozen=True)
class BroadcastSettings:
    batch_size: int = 5000  # notices queued per transaction of the fan-out


@dataclass(frozen=True)
class AdminSettings:
    # Token name -> SHA-256 digest of the bearer token; only digests are ever stored.
    tokens: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Settings:
    path: Path
    daemon: DaemonSettings
    http: HttpSettings
    database: DatabaseSettings
    smtp: SmtpSettings
    sources: Mapping[str, SourceSettings]
    defaults: DefaultsSettings
    webhooks: WebhookSettings
    delivery: DeliverySettings
    logging: LoggingSettings
    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    calls: CallSettings = CallSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    templates_folder: Path | None = None
    dkim: DkimSettings = DkimSettings()
    admin: AdminSettings = AdminSettings()
    broadcasts: BroadcastSettings = BroadcastSettings()

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


T = TypeVar("T")


class _Section:
    """Reads one TOML table, collecting problems instead of stopping at the first."""

    def __init__(self, name: str, raw: object, problems: list[tuple[str, str]]) -> None:
        self.name = name
        self.problems = problems
        self.seen: set[str] = set()
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(None, f"must be a table, got {type(raw).__name__}")
            raw = {}
        self.raw: dict[str, Any] = raw

    def label(self, key: str | None) -> str:
        return f"[{self.name}]" if key is None else f"[{self.name}] {key}"

    def problem(self, key: str | None, message: str) -> None:
        self.problems.append((self.label(key), message))

    def get(
        self,
        key: str,
        kind: type[T] | tuple[type, ...],
        default: T,
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        self.seen.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a port of `true` is a mistake, not 1.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(_toml_type(k) for k in kinds)
            self.problem(key, f"must be {names}, got {value!r}")
            return default
        if float in kinds and isinstance(value, int):
            value = float(value)
        if check is not None:
            message = check(value)
            if message:
                self.problem(key, message)
                return default
        return value  # type: ignore[no-any-return]

    def finish(self) -> None:
        for key in sorted(set(self.raw) - self.seen):
            self.problem(key, "unknown key")


def _toml_type(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        kind, kind.__name__
    )


def _between(low: float, high: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        if not low <= value <= high:
            return f"must be between {_number(low)} and {_number(high)}, got {_number(value)}"
        return None

    return check


def _number(value: float) -> str:
    # Whole numbers in full: a limit of 80000000 written as 8e+07 is not what the file says.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(map(repr, choices))}, got {value!r}"
        return None

    return check


def check_webhook_secret(secret: str) -> str | None:
    if not secret.startswith("whsec_"):
        return "must start with 'whsec_' (Standard Webhooks secret)"
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "is not valid base64 after 'whsec_'"
    if len(key) < 16:
        return f"key is {len(key)} bytes; use at least 16 (24 to 64 recommended)"
    return None


def _optional_file(section: _Section, key: str, base_dir: Path) -> Path | None:
    value = section.get(key, str, "")
    if not value:
        return None
    path = (base_dir / Path(value).expanduser()).resolve()
    if not path.is_file():
        section.problem(key, f"no such file: {path}")
        return None
    return path


def _optional_web_url(value: str) -> str | None:
    if value == "" or value.startswith(("https://", "http://")):
        return None
    return "must be empty or an http(s) URL"


def _check_sender(value: str) -> str | None:
    address = parseaddr(value)[1]
    if "@" not in address or any(c in value for c in "\r\n"):
        return f"must be an address such as 'Operator <notices@example.com>', got {value!r}"
    return None


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError listing every problem."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(path, [("file", "does not exist")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [("syntax", str(error))]) from None
    except OSError as error:
        raise ConfigError(path, [("file", f"cannot be read: {error.strerror}")]) from None
    return from_mapping(raw, path, env)


def from_mapping(raw: Mapping[str, Any], path: Path, env: Mapping[str, str]) -> Settings:
    problems: list[tuple[str, str]] = []
    known = {
        "daemon",
        "http",
        "database",
        "smtp",
        "sources",
        "defaults",
        "webhooks",
        "delivery",
        "logging",
        "thresholds",
        "calls",
        "attachments",
        "templates",
        "dkim",
        "admin",
        "broadcasts",
    }
    for key in sorted(set(raw) - known):
        problems.append((f"[{key}]", "unknown section"))

    base_dir = path.resolve().parent

    s = _Section("daemon", raw.get("daemon"), problems)
    state_dir = s.get("state_dir", str, "var", lambda v: None if v.strip() else "must not be empty")
    grace = s.get("shutdown_grace_seconds", (int, float), 10.0, _between(0, 600))
    instance = s.get("instance", str, "")
    secret = env.get("NOTIFYD_LINK_SECRET") or s.get("link_secret", str, "")
    s.finish()
    daemon = DaemonSettings(
        # Relative paths are relative to the config file, so the daemon behaves the same
        # whatever directory systemd or a shell starts it from.
        state_dir=(base_dir / Path(state_dir).expanduser()).resolve(),
        shutdown_grace_seconds=float(grace),
        instance=instance or f"{socket.gethostname()}:{os.getpid()}",
        link_secret=secret,
    )

    s = _Section("http", raw.get("http"), problems)
    http = HttpSettings(
        host=s.get("host", str, "127.0.0.1", lambda v: None if v else "must not be empty"),
        port=s.get("port", int, 8080, _between(0, 65535)),
        public_url=s.get(
            "public_url",
            str,
            "",
            _optional_web_url,
        ),
    )
    s.finish()

    s = _Section("database", raw.get("database"), problems)
    url = s.get(
        "url",
        str,
        "",
        lambda v: (
            None
            if v == "" or v.startswith(("postgresql://", "postgres://"))
            else "must be empty (embedded PostgreSQL) or a postgresql:// URL"
        ),
    )
    pool_min = s.get("pool_min", int, 2, _between(1, 100))
    pool_max = s.get("pool_max", int, 10, _between(1, 500))
    if pool_max < pool_min:
        s.problem("pool_max", f"must be at least pool_min ({pool_min}), got {pool_max}")
    database = DatabaseSettings(
        url=env.get("NOTIFYD_DATABASE_URL") or url,
        pool_min=pool_min,
        pool_max=pool_max,
        connect_timeout_seconds=float(
            s.get("connect_timeout_seconds", (int, float), 5.0, _between(0.1, 120))
        ),
        statement_timeout_seconds=float(
            s.get("statement_timeout_seconds", (int, float), 30.0, _between(0.1, 3600))
        ),
    )
    s.finish()

    s = _Section("smtp", raw.get("smtp"), problems)
    file_password = s.get("password", str, "")
    smtp = SmtpSettings(
        host=s.get("host", str, ""),
        port=s.get("port", int, 25, _between(1, 65535)),
        security=s.get("security", str, "none", _one_of(*SMTP_SECURITY)),  # type: ignore[arg-type]
        username=s.get("username", str, ""),
        # The file's key is read either way, so a `password = ""` beside the environment
        # variable is not reported as unknown.
        password=env.get("NOTIFYD_SMTP_PASSWORD") or file_password,
        sender=s.get("sender", str, "notifyd <notifyd@localhost>", _check_sender),
        timeout_seconds=float(s.get("timeout_seconds", (int, float), 30.0, _between(0.1, 600))),
        pool_size=s.get("pool_size", int, 32, _between(1, 100)),
        verify_tls=s.get("verify_tls", bool, True),
        ca_file=_optional_file(s, "ca_file", base_dir),
        reply_to=s.get("reply_to", str, ""),
    )
    if smtp.reply_to:
        message = _check_sender(smtp.reply_to)
        if message:
            s.problem("reply_to", message)
    if smtp.username and not smtp.password:
        s.problem("password", "is empty but username is set (or set NOTIFYD_SMTP_PASSWORD)")
    s.finish()

    sources: dict[str, SourceSettings] = {}
    raw_sources = raw.get("sources", {})
    if not isinstance(raw_sources, dict):
        problems.append(("[sources]", "must be a table of [sources.<name>] tables"))
        raw_sources = {}
    for name, table in raw_sources.items():
        source = _read_source(name, table, problems)
        if source is not None:
            sources[name] = source

    s = _Section("defaults", raw.get("defaults"), problems)
    language = s.get("language", str, "ro", _one_of(*LANGUAGES))
    timezone = s.get("timezone", str, "Europe/Bucharest", check_timezone)
    quiet_text = s.get("quiet_hours", str, "22:00-08:00")
    try:
        quiet_hours = parse_quiet_hours(quiet_text)
    except ValueError as error:
        s.problem("quiet_hours", str(error))
        quiet_hours = DefaultsSettings().quiet_hours
    modes: dict[str, str] = {}
    for category, mode in s.get("modes", dict, {}).items():
        if category not in DEFAULT_MODE_CATEGORIES:
            s.problem(
                f"modes.{category}",
                "not a category that can be configured (security and service are mandatory)"
                if category in ("security", "service")
                else f"unknown category; known: {', '.join(DEFAULT_MODE_CATEGORIES)}",
            )
        elif mode not in MODES:
            s.problem(f"modes.{category}", f"must be one of {', '.join(map(repr, MODES))}")
        else:
            modes[category] = mode
    digest_text = s.get("digest_time", str, "08:00")
    try:
        digest_time = parse_time_of_day(digest_text)
    except ValueError as error:
        s.problem("digest_time", str(error))
        digest_time = DefaultsSettings().digest_time
    s.finish()
    defaults = DefaultsSettings(
        language=language,
        timezone=timezone,
        quiet_hours=quiet_hours,
        modes=modes,
        digest_time=digest_time,
    )

    s = _Section("webhooks", raw.get("webhooks"), problems)
    webhooks = WebhookSettings(
        timestamp_tolerance_seconds=s.get(
            "timestamp_tolerance_seconds",
            int,
            300,
            _between(1, 86400),
        ),
        idempotency_days=s.get("idempotency_days", int, 7, _between(7, 3650)),
        max_body_bytes=s.get(
            "max_body_bytes",
            int,
            25 * 1024 * 1024,
            _between(1024, 1024**3),
        ),
        max_bytes_in_flight=s.get(
            "max_bytes_in_flight",
            int,
            100 * 1024 * 1024,
            _between(1024, 16 * 1024**3),
        ),
    )
    if webhooks.max_bytes_in_flight < webhooks.max_body_bytes:
        # Else a body of the largest size allowed could never be taken.
        s.problem("max_bytes_in_flight", "must be at least max_body_bytes")
    s.finish()

    s = _Section("delivery", raw.get("delivery"), problems)
    retry_initial = float(
        s.get("retry_initial_seconds", (int, float), 300.0, _between(0.01, 86400))
    )
    retry_max = float(s.get("retry_max_seconds", (int, float), 4000.0, _between(0.01, 7 * 86400)))
    if retry_max < retry_initial:
        s.problem("retry_max_seconds", "must be at least retry_initial_seconds")
    lifetimes = dict(DEFAULT_LIFETIMES)
    for category, seconds in s.get("lifetimes", dict, {}).items():
        if category not in DEFAULT_LIFETIMES:
            s.problem(
                f"lifetimes.{category}", f"unknown category; known: {', '.join(DEFAULT_LIFETIMES)}"
            )
        elif (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (60 <= seconds <= 60 * 86400)
        ):
            s.problem(f"lifetimes.{category}", "must be seconds between 60 and 5184000")
        else:
            lifetimes[category] = float(seconds)
    domain_rates: dict[str, float] = {}
    for domain, rate in s.get("domain_rates", dict, {}).items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            s.problem(f"domain_rates.{domain}", "must be messages per second above 0")
        else:
            domain_rates[domain.lower()] = float(rate)
    delivery = DeliverySettings(
        # By default two for each SMTP connection: with 4 connections, 64 in flight
        # delivered 779 msg/s against 1,057 with 32 (bench/delivery.py --connections 4).
        concurrency=s.get("concurrency", int, 2 * smtp.pool_size, _between(1, 1000)),
        batch_size=s.get("batch_size", int, 50, _between(1, 10000)),
        lease_seconds=float(s.get("lease_seconds", (int, float), 30.0, _between(0.3, 3600))),
        poll_seconds=float(s.get("poll_seconds", (int, float), 5.0, _between(0.05, 3600))),
        retry_initial_seconds=retry_initial,
        retry_max_seconds=retry_max,
        retry_lifetime_seconds=float(
            s.get("retry_lifetime_seconds", (int, float), 5 * 86400.0, _between(1, 60 * 86400))
        ),
        lifetimes=lifetimes,
        hourly_cap=s.get("hourly_cap", int, 20, _between(0, 100000)),
        bounce_limit=s.get("bounce_limit", int, 3, _between(1, 1000)),
        breaker_threshold=s.get("breaker_threshold", int, 5, _between(0, 10000)),
        breaker_cooldown_seconds=float(
            s.get("breaker_cooldown_seconds", (int, float), 60.0, _between(0.01, 86400))
        ),
        domain_rate=float(s.get("domain_rate", (int, float), 0.0, _between(0, 100000))),
        domain_rates=domain_rates,
    )
    s.finish()

    s = _Section("logging", raw.get("logging"), problems)
    logging = LoggingSettings(
        level=s.get("level", str, "info", _one_of(*LOG_LEVELS)),
        format=s.get("format", str, "json", _one_of("json", "console")),  # type: ignore[arg-type]
    )
    s.finish()

    thresholds = _read_thresholds(raw.get("thresholds", {}), problems)

    s = _Section("calls", raw.get("calls"), problems)
    calls = CallSettings(
        voicemail_wait_seconds=float(
            s.get("voicemail_wait_seconds", (int, float), 120.0, _between(0, 3600))
        ),
        burst_window_seconds=float(
            s.get("burst_window_seconds", (int, float), 300.0, _between(0, 86400))
        ),
    )
    s.finish()

    s = _Section("attachments", raw.get("attachments"), problems)
    hosts = s.get("fetch_allow_hosts", list, [])
    for index, host in enumerate(hosts):
        if not isinstance(host, str) or not host.strip():
            s.problem(f"fetch_allow_hosts[{index}]", "must be a host name, IP address or CIDR")
            continue
        try:
            parse_entry(host)
        except ValueError as error:
            s.problem(f"fetch_allow_hosts[{index}]", str(error))
    attachments = AttachmentSettings(
        max_bytes=s.get("max_bytes", int, 20 * 1024 * 1024, _between(1024, 1024**3)),
        max_email_bytes=s.get("max_email_bytes", int, 10 * 1024 * 1024, _between(0, 1024**3)),
        fetch_allow_hosts=tuple(str(h).strip().lower() for h in hosts if isinstance(h, str)),
        fetch_timeout_seconds=float(
            s.get("fetch_timeout_seconds", (int, float), 30.0, _between(0.1, 600))
        ),
        fetch_attempts=s.get("fetch_attempts", int, 5, _between(1, 100)),
        fetch_retry_seconds=float(
            s.get("fetch_retry_seconds", (int, float), 5.0, _between(0.05, 3600))
        ),
        keep_days=s.get("keep_days", int, 30, _between(0, 3650)),
        max_pages=s.get("max_pages", int, 100, _between(1, 10_000)),
        # Under Pillow's decompression-bomb threshold (89.5 million pixels), so that its own
        # check never refuses a page before ours names the limit.
        max_pixels=s.get("max_pixels", int, 25_000_000, _between(10_000, 80_000_000)),
        portal_url=s.get(
            "portal_url",
            str,
            "",
            _optional_web_url,
        ),
    )
    s.finish()

    s = _Section("templates", raw.get("templates"), problems)
    templates_folder = None
    folder = s.get("folder", str, "")
    if folder:
        templates_folder = (base_dir / Path(folder).expanduser()).resolve()
        if not templates_folder.is_dir():
            s.problem("folder", f"no such folder: {templates_folder}")
    s.finish()

    s = _Section("dkim", raw.get("dkim"), problems)
    dkim = DkimSettings(
        domain=s.get("domain", str, ""),
        selector=s.get("selector", str, ""),
        private_key_file=_optional_file(s, "private_key_file", base_dir),
    )
    if dkim.enabled and not (dkim.domain and dkim.selector):
        s.problem("private_key_file", "is set but domain or selector is empty")
    s.finish()

    admin = _read_admin(raw.get("admin", {}), problems)
    s = _Section("broadcasts", raw.get("broadcasts"), problems)
    broadcasts = BroadcastSettings(
        batch_size=s.get("batch_size", int, 5000, _between(1, 100_000)),
    )
    s.finish()

    if problems:
        raise ConfigError(path, problems)
    return Settings(
        admin=admin,
        broadcasts=broadcasts,
        thresholds=thresholds,
        calls=calls,
        attachments=attachments,
        templates_folder=templates_folder,
        dkim=dkim,
        path=path,
        daemon=daemon,
        http=http,
        database=database,
        smtp=smtp,
        sources=sources,
        defaults=defaults,
        webhooks=webhooks,
        delivery=delivery,
        logging=logging,
    )


def _read_admin(raw: object, problems: list[tuple[str, str]]) -> AdminSettings:
    s = _Section("admin", raw, problems)
    tokens = s.get("tokens", dict, {})
    s.finish()
    digests: dict[str, bytes] = {}
    for name, value in tokens.items():
        key = f"[admin.tokens] {name}"
        match = re.fullmatch(r"sha256:([0-9a-fA-F]{64})", value) if isinstance(value, str) else None
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            problems.append((key, "token names are letters, digits, '.', '-' and '_'"))
        elif match is None:
            problems.append(
                (key, 'must be "sha256:<64 hex digits>", the SHA-256 of the token, never the token')
            )
        else:
            digests[name] = bytes.fromhex(match[1])
    return AdminSettings(tokens=digests)


def _read_thresholds(raw: object, problems: list[tuple[str, str]]) -> dict[str, Thresholds]:
    if not isinstance(raw, dict):
        problems.append(("[thresholds]", "must be a table of [thresholds.<CURRENCY>] tables"))
        return {}
    result: dict[str, Thresholds] = {}
    for currency, table in raw.items():
        s = _Section(f"thresholds.{currency}", table, problems)
        if not re.fullmatch(r"[A-Z]{3}", currency):
            s.problem(None, "the name must be an ISO 4217 currency code such as RON")
        values: dict[str, Decimal] = {}
        for key, default in (("low", None), ("critical", None), ("hysteresis", "0")):
            raw_value = s.get(key, (str, int, float), default)
            if raw_value is None:
                s.problem(key, "is required")
                continue
            try:
                values[key] = Decimal(str(raw_value))
            except InvalidOperation:
                s.problem(key, f'must be an amount such as "5.00", got {raw_value!r}')
        s.finish()
        if len(values) == 3:
            if values["critical"] >= values["low"]:
                s.problem("critical", "must be below low")
            elif values["hysteresis"] < 0:
                s.problem("hysteresis", "must not be negative")
            else:
                result[currency] = Thresholds(**values)
    return result


def _read_source(
    name: str, table: object, problems: list[tuple[str, str]]
) -> SourceSettings | None:
    s = _Section(f"sources.{name}", table, problems)
    if not SOURCE_NAME.match(name):
        s.problem(None, "source names are lowercase letters, digits, '-' and '_'")
    secrets = s.get("secrets", list, [])
    clean: list[str] = []
    if not secrets and "secrets" in s.raw:
        s.problem("secrets", "must list at least one secret")
    elif "secrets" not in s.raw:
        s.problem("secrets", "is required")
    for index, secret in enumerate(secrets):
        if not isinstance(secret, str):
            s.problem(f"secrets[{index}]", "must be a string")
            continue
        message = check_webhook_secret(secret)
        if message:
            s.problem(f"secrets[{index}]", message)
        else:
            clean.append(secret)
    allow: tuple[IPNetwork, ...] | None = None
    if "allow_from" in s.raw:
        networks: list[IPNetwork] = []
        for index, item in enumerate(s.get("allow_from", list, [])):
            try:
                networks.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                s.problem(f"allow_from[{index}]", f"is not an IP address or CIDR: {item!r}")
        allow = tuple(networks)
    s.finish()
    return SourceSettings(name=name, secrets=tuple(clean), allow_from=allow)


# -- warnings: a file that works but is not ready for subscribers ----------------------------

# What `notifyd check-config` warns about (and `--strict` refuses). Nothing here stops the
# daemon: a developer's machine runs with all of it.
_WEBHOOK_KEY_BYTES = 24  # Standard Webhooks: 24 to 64 random bytes
_LINK_SECRET_CHARACTERS = 32  # secrets.token_urlsafe(32), what notifyd generates, is 43
# Digests of tokens anyone would try first; "test" is the example in docs/admin-api.md.
_GUESSABLE_TOKENS = frozenset(
    hashlib.sha256(word.encode()).digest()
    for word in ("", "test", "token", "secret", "changeme", "password", "admin", "ops")
)
_PLACEHOLDER_WORDS = ("replace", "change", "example", "secret", "placeholder", "xxx")


def _webhook_secret_warning(secret: str) -> str | None:
    body = secret.removeprefix("whsec_")
    key = base64.b64decode(body + "=" * (-len(body) % 4))
    if b"REPLACE-ME" in key:
        return "is the example config's placeholder: anyone who read the example can sign"
    # Random bytes are all printable once in 2**42 for a 24-byte key: a readable key was
    # typed (or copied from somewhere), not drawn.
    if all(0x20 <= byte < 0x7F for byte in key):
        return "is readable text, not random bytes: a typed or copied key can be guessed"
    if len(key) < _WEBHOOK_KEY_BYTES:
        return f"key is {len(key)} bytes; use {_WEBHOOK_KEY_BYTES} to 64 random bytes"
    return None


def warnings(settings: Settings) -> list[tuple[str, str]]:
    """What works but should not face subscribers: placeholder or weak secrets, links to
    an address they cannot reach. Keyed like ConfigError's problems; never the secret."""
    found: list[tuple[str, str]] = []
    link_secret = settings.daemon.link_secret
    if link_secret and (
        len(link_secret) < _LINK_SECRET_CHARACTERS
        or any(word in link_secret.lower() for word in _PLACEHOLDER_WORDS)
    ):
        found.append(
            (
                "[daemon] link_secret",
                f"is weak: use {_LINK_SECRET_CHARACTERS} or more random characters "
                "(or leave it empty for one generated in the state folder)",
            )
        )
    public_url = settings.http.public_url
    host = urlsplit(public_url).hostname if public_url else settings.http.host
    if not public_url or _unreachable(host or ""):
        where = public_url or f"http://{settings.http.host}:{settings.http.port}"
        found.append(
            (
                "[http] public_url",
                f"{'is empty: ' if not public_url else ''}links in emails point at {where}, "
                "which subscribers cannot reach; set the address they reach this daemon at",
            )
        )
    for name, source in settings.sources.items():
        for index, secret in enumerate(source.secrets):
            message = _webhook_secret_warning(secret)
            if message:
                found.append((f"[sources.{name}] secrets[{index}]", message))
    for name, digest in settings.admin.tokens.items():
        if digest in _GUESSABLE_TOKENS:
            found.append(
                (
                    f"[admin.tokens] {name}",
                    "is the digest of a guessable token (such as the example in "
                    "docs/admin-api.md): make one with secrets.token_urlsafe(32)",
                )
            )
    return found


def _unreachable(host: str) -> bool:
    """A host subscribers' mail clients cannot reach: loopback, unspecified, localhost."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
