"""Settings: the TOML file plus NOTIFYD_* environment, read into frozen pydantic models.

One model per table of the file (service.py: [daemon] [database] [smtp] [templates]
[dkim] [logging]; listeners.py: [http] [http.admin]; streams.py: [smtp.streams.marketing];
intake.py: [sources.<name>] and
[sources.<name>.callback] [webhooks] [defaults] [thresholds.<CUR>] [calls] [broadcasts],
with service_credentials.py checking a sending service's keys; admin.py: [admin.tokens]
[audit]; delivery.py: [delivery] [attachments] [callbacks]; links.py: [links]; branding.py:
[branding]; statements.py: [statements]; privacy.py: [privacy]; retention.py: [retention];
root.py: the whole file).
Each key is declared once, with its type, its limits, its default and the description that
config/notifyd.example.toml shows (example.py writes that part of it: `make
example-config`).

Every problem is reported with the file, the key and what is wrong, all at once, so an
admin fixes a config in one pass (problems.py turns pydantic's errors into "path: [section]
key: message"). Unknown keys are errors: a typo such as `prot = 25` must not silently fall
back to a default.

Environment: a key whose model marks it `Env("NOTIFYD_...")` is overridden by that variable
when it is set and not empty, so that passwords and connection strings can stay out of the
file (systemd's EnvironmentFile=). The value replaces the file's before validation and is
checked like it; a problem with it names the variable. The keys are:

    [daemon] link_secret    NOTIFYD_LINK_SECRET
    [database] url          NOTIFYD_DATABASE_URL
    [smtp] password         NOTIFYD_SMTP_PASSWORD
    [privacy] erasure_key   NOTIFYD_ERASURE_KEY

(`environment_keys()` lists them from the models; a test holds this list to it.)
"""

from __future__ import annotations

from notifyd.settings.admin import SCOPES, AdminSettings, AdminToken, AuditSettings, Scope
from notifyd.settings.branding import BrandingSettings
from notifyd.settings.delivery import (
    DEFAULT_LIFETIMES,
    AttachmentSettings,
    CallbackSenderSettings,
    DeliverySettings,
)
from notifyd.settings.intake import (
    DEFAULT_MODE_CATEGORIES,
    BroadcastSettings,
    CallbackSettings,
    CallSettings,
    DefaultsSettings,
    IPNetwork,
    SourceSettings,
    Thresholds,
    WebhookSettings,
    check_webhook_secret,
)
from notifyd.settings.links import LinkSettings
from notifyd.settings.listeners import AdminListenerSettings, HttpSettings, tls_context
from notifyd.settings.problems import ConfigError
from notifyd.settings.readiness import warnings
from notifyd.settings.retention import RetentionSettings
from notifyd.settings.root import Settings, callback_sources, environment_keys, from_mapping, load
from notifyd.settings.service import (
    LOG_LEVELS,
    DaemonSettings,
    DatabaseSettings,
    DkimSettings,
    LoggingSettings,
    SmtpSettings,
    TemplateSettings,
)
from notifyd.settings.statements import StatementSettings
from notifyd.settings.streams import (
    MARKETING,
    SMTP_SECURITY,
    STREAMS,
    TRANSACTIONAL,
    StreamSettings,
    stream_of,
)

__all__ = [
    "DEFAULT_LIFETIMES",
    "DEFAULT_MODE_CATEGORIES",
    "LOG_LEVELS",
    "MARKETING",
    "SCOPES",
    "SMTP_SECURITY",
    "STREAMS",
    "TRANSACTIONAL",
    "AdminListenerSettings",
    "AdminSettings",
    "AdminToken",
    "AttachmentSettings",
    "AuditSettings",
    "BrandingSettings",
    "BroadcastSettings",
    "CallSettings",
    "CallbackSenderSettings",
    "CallbackSettings",
    "ConfigError",
    "DaemonSettings",
    "DatabaseSettings",
    "DefaultsSettings",
    "DeliverySettings",
    "DkimSettings",
    "HttpSettings",
    "IPNetwork",
    "LinkSettings",
    "LoggingSettings",
    "RetentionSettings",
    "Scope",
    "Settings",
    "SmtpSettings",
    "SourceSettings",
    "StatementSettings",
    "StreamSettings",
    "TemplateSettings",
    "Thresholds",
    "WebhookSettings",
    "callback_sources",
    "check_webhook_secret",
    "environment_keys",
    "from_mapping",
    "load",
    "stream_of",
    "tls_context",
    "warnings",
]
