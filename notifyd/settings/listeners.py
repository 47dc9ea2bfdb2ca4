"""[http] and [http.admin]: the two listeners, each for its own audience, their TLS, and the
reverse proxies whose word on the client's address is believed.

The public listener ([http]) takes the webhooks and the subscribers' pages; the admin one
([http.admin]) the admin API and /metrics, on loopback unless the operator says otherwise.
http/listeners.py binds and serves them; http/proxies.py reads trusted_proxies. Beside
service.py (the other service sections) and readiness.py (check-config's warnings on them).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

from notifyd.settings.fields import (
    Section,
    array,
    existing,
    not_empty,
    one_of,
    section,
    web_url,
)
from notifyd.settings.intake import IPNetwork
from notifyd.settings.intake import _network as network

PROXY_HEADERS = ("x-forwarded-for", "forwarded")


CertFile = Annotated[Path | None, BeforeValidator(existing("file"))]


def _pairs_with_cert(value: Path | None, info: ValidationInfo) -> Path | None:
    """Checked on key_file (after cert_file), so a problem names the table and the key."""
    tls_context(info.data.get("cert_file"), value)
    return value


KeyFile = Annotated[CertFile, AfterValidator(_pairs_with_cert)]


def _cert_file() -> Any:
    return Field(
        None,
        description="PEM certificate chain (the server's first); with key_file this listener "
        "speaks HTTPS only. Empty: plain HTTP (behind a TLS-terminating proxy, or loopback).",
    )


def _key_file() -> Any:
    return Field(
        None,
        validate_default=True,
        description="PEM private key of cert_file, readable by notifyd only.",
    )


def tls_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    """A listener's TLS: both files (HTTPS), or neither (plain HTTP). Loaded by the models'
    validators too, so that check-config and a reload say a mismatched pair at once."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ValueError("cert_file and key_file are set together, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        raise ValueError(f"cert_file and key_file do not load together: {error}") from None
    return context


class AdminListenerSettings(Section):
    """The admin API (/v1/admin/...), /metrics, /export.schema.json and an /openapi.json of
    them (with /healthz and /readyz), on a listener of their own: the public one answers 404
    for them. Changing any key here needs a restart."""

    host: Annotated[str, AfterValidator(not_empty)] = Field(
        "127.0.0.1",
        description="Loopback: only this host's admins and Prometheus. Another address "
        "exposes the admin API to that network (check-config warns without TLS).",
    )
    port: int = Field(8081, ge=0, le=65535)
    cert_file: CertFile = _cert_file()
    key_file: KeyFile = _key_file()
    shared: bool = Field(
        False,
        description="true: no listener of its own; the admin API and /metrics are served on "
        "[http]'s listener too (one port for a small install, but whoever reaches that port "
        "reaches them: tokens still guard the API, /metrics is open). host, port and the TLS "
        "files here are then unused.",
    )


class HttpSettings(Section):
    """The public listener: webhooks (/v1/webhooks, /v1/reports), the subscribers' pages
    (/v1/preferences, /v1/unsubscribe, /v1/pages, /v1/links), /healthz, /readyz and an
    /openapi.json of them. Changing host, port or the TLS files needs a restart;
    trusted_proxies and proxy_header take effect on reload."""

    host: Annotated[str, AfterValidator(not_empty)] = Field("127.0.0.1")
    port: int = Field(8080, ge=0, le=65535)
    public_url: Annotated[str, AfterValidator(web_url)] = Field(
        "",
        description='How subscribers reach this daemon (links in emails), e.g. "https://notices.'
        'voip.example". Empty: http://host:port, which only this host can open (check-config '
        "warns).",
    )
    cert_file: CertFile = _cert_file()
    key_file: KeyFile = _key_file()
    trusted_proxies: Annotated[
        tuple[Annotated[IPNetwork, BeforeValidator(network)], ...], BeforeValidator(array)
    ] = Field(
        (),
        description="Reverse proxies (addresses or CIDRs) whose proxy_header names the client: "
        "only a request whose peer is one of them has its client address taken from it (the "
        "rightmost hop not itself listed), for sources' allow_from, rate limits and logs. A "
        "request from anywhere else keeps its peer's address, whatever header it sends.",
    )
    proxy_header: Annotated[Literal["x-forwarded-for", "forwarded"], one_of(PROXY_HEADERS)] = Field(
        "x-forwarded-for",
        description='"x-forwarded-for" | "forwarded" (RFC 7239): the one header the proxies '
        "append to; the other is ignored, since a client could have written it.",
    )
    admin: AdminListenerSettings = section()

    @property
    def scheme(self) -> str:
        return "https" if self.cert_file is not None else "http"

    @model_validator(mode="after")
    def _two_ports(self) -> HttpSettings:
        admin = self.admin
        if not admin.shared and admin.port and (admin.host, admin.port) == (self.host, self.port):
            raise ValueError(
                f"[http.admin] listens on {admin.host}:{admin.port} as [http] does; give it "
                "a port of its own, or set [http.admin] shared = true"
            )
        return self
