"""Send events to notifyd from another program: build, sign (Standard Webhooks), post, retry.

For a billing system's or a PBX script's Python, and for `notifyd send` (send_cli.py), which
is this module on a command line. It imports the standard library and `standardwebhooks`
only, and nothing else of notifyd: a sender needs neither the daemon's dependencies nor its
config, and `notifyd send` starts in tens of milliseconds (docs/integrations.md has the
figures). A test holds it to that (tests/integration/test_send.py).

    from notifyd.client import Client, event, read_secret

    notifyd = Client("http://notifyd.internal:8080/v1/webhooks/billing",
                     read_secret("/etc/notifyd/billing.secret"))
    notifyd.send(event("billing.credit_added", "acc-1001", {"amount": "10.00", ...}))

What it promises (SPEC §3): every attempt of one event carries the same `webhook-id`, so
notifyd stores it once however often it is posted; 503, 429, other 5xx and network faults
are retried with back-off (a Retry-After is honoured) until `timeout` seconds have passed
in all, then `Unavailable`; any other answer that is not 2xx is `Refused`, with notifyd's
`error`, `detail` and `fields`, and is not retried (the same bytes would be refused again).
Each attempt is signed anew, so a retry or a spooled event drained hours later is never
refused for a stale `webhook-timestamp`.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any, NamedTuple

from standardwebhooks import Webhook

DEFAULT_TIMEOUT = 10.0
# Answers worth another attempt: notifyd could not store it now (503), asked for less (429),
# or something between (a proxy's 502/504, a timeout 408). The rest of 4xx would repeat.
RETRIED = frozenset({408, 425, 429, 500, 502, 503, 504})
# What notifyd names as the sender in its access logs, with the version of this protocol.
USER_AGENT = "notifyd-client/1"


class SendError(Exception):
    """The event was not accepted. `webhook_id` is the id it was (or would be) posted with."""

    def __init__(self, message: str, webhook_id: str) -> None:
        super().__init__(message)
        self.webhook_id = webhook_id


class Refused(SendError):
    """notifyd (or something at its URL) answered with a status that retrying cannot change:
    a bad signature (401), an unknown source (404), an invalid event (422) …"""

    def __init__(
        self, status: int, code: str, detail: str, fields: Mapping[str, str], webhook_id: str
    ) -> None:
        named = "".join(f"; {key}: {value}" for key, value in fields.items())
        message = f"notifyd refused the event: {status} {code}: {detail}{named}"
        # One line whatever the answer held: it is printed to a PBX's log as it is.
        super().__init__(" ".join(message.split()), webhook_id)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = dict(fields)


class Unavailable(SendError):
    """Not accepted within the time bound: unreachable, or answering 503 throughout.
    Posting it again later with the same `webhook_id` is safe (the spool does that)."""

    def __init__(self, reason: str, attempts: int, webhook_id: str) -> None:
        super().__init__(
            f"notifyd did not accept the event after {attempts} attempt(s): {reason}", webhook_id
        )
        self.reason = reason
        self.attempts = attempts


# NamedTuple, not dataclass: dataclasses loads inspect (ast, tokenize, dis), 10 ms of the
# start of every `notifyd send`; uuid (platform, subprocess) is left out for the same reason.
class Receipt(NamedTuple):
    """A 2xx: the event is stored (`duplicate`: it already was, under this `webhook_id`)."""

    status: int
    webhook_id: str
    event_id: str | None
    duplicate: bool
    attempts: int


class Outgoing(NamedTuple):
    """An event as it goes on the wire: the exact body bytes and the id every attempt uses."""

    webhook_id: str
    body: bytes


def event(
    type: str,
    account_id: str,
    data: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The envelope notifyd reads: `{"type", "timestamp", "data": {"account_id", ...}}`.
    `occurred_at` (default now) must be timezone-aware: notifyd refuses a bare local time."""
    moment = occurred_at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()}: the time needs its zone (+00:00, Z, ...)")
    return {
        "type": type,
        "timestamp": moment.isoformat(),
        "data": {"account_id": account_id, **(data or {})},
    }


def new_webhook_id() -> str:
    return f"msg_{os.urandom(16).hex()}"


def prepare(body: Mapping[str, Any] | bytes | str, webhook_id: str | None = None) -> Outgoing:
    """Fix the bytes and the id once, before the first attempt: retries must repeat both."""
    if isinstance(body, Mapping):
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        raw = body.encode() if isinstance(body, str) else bytes(body)
    return Outgoing(webhook_id or new_webhook_id(), raw)


def read_secret(path: str | Path) -> str:
    """The `whsec_…` secret from the first non-empty line of a file (a trailing newline, as
    an editor leaves it, is not part of it)."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            return line.strip()
    raise ValueError(f"{path}: empty; it should hold the source's whsec_ secret")


def signed_headers(secret: Webhook, outgoing: Outgoing, now: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": outgoing.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": secret.sign(outgoing.webhook_id, now, outgoing.body),
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 of a POST as a GET without the body: a redirect is
    refused instead, naming where it points, so the operator fixes the URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """Posts events to one source's webhook URL (`…/v1/webhooks/<source>`) with its secret.
    `timeout`: the most one `send` takes, all attempts and waits included; `clock` and
    `sleep` are there for a test's fake time."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the URL must start with http:// or https://, got {url!r}")
        try:
            self._signer = Webhook(secret.strip())
        except Exception as error:  # binascii.Error, EmptyWebhookSecretError, ...
            raise ValueError(f"not a whsec_ secret: {error}") from None
        self.url = url
        self.timeout = timeout
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirects)

    def send(
        self,
        body: Mapping[str, Any] | bytes | str | Outgoing,
        *,
        webhook_id: str | None = None,
        timeout: float | None = None,
    ) -> Receipt:
        """Post until accepted (Receipt), refused (Refused) or out of time (Unavailable)."""
        outgoing = body if isinstance(body, Outgoing) else prepare(body, webhook_id)
        deadline = self.clock() + (self.timeout if timeout is None else timeout)
        backoff = self.first_backoff
        attempts = 0
        reason = "no time to try"
        while (remaining := deadline - self.clock()) > 0:
            attempts += 1
            answer = self._attempt(outgoing, remaining, attempts)
            if isinstance(answer, Receipt):
                return answer
            reason, asked = answer
            # Jitter: PBX hosts that lost notifyd together do not all come back at once.
            wait = asked if asked is not None else backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.max_backoff)
            if self.clock() + wait >= deadline:
                break  # no attempt fits after the wait: say so now, not at the deadline
            self.sleep(wait)
        raise Unavailable(reason, attempts, outgoing.webhook_id)

    def _attempt(
        self, outgoing: Outgoing, remaining: float, attempts: int
    ) -> Receipt | tuple[str, float | None]:
        """One POST: a Receipt, or why to retry and the wait notifyd asked for; raises
        Refused. `remaining` bounds each blocking socket operation of it."""
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __post_init__
            self.url,
            data=outgoing.body,
            headers=signed_headers(self._signer, outgoing, datetime.now(UTC)),
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=remaining) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
            if status not in RETRIED:
                raise _refusal(status, text, error.headers.get("Location"), outgoing) from None
            return f"{status} {_answer(text).get('detail', '')}".strip(), _retry_after(error)
        except (OSError, HTTPException) as error:  # refused, reset, timed out, DNS, TLS
            return _network_reason(error), None
        answer = _answer(text)
        return Receipt(
            status,
            outgoing.webhook_id,
            answer.get("event_id"),
            bool(answer.get("duplicate", False)),
            attempts,
        )


def _answer(text: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"detail": text[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {}


def _refusal(status: int, text: bytes, location: str | None, outgoing: Outgoing) -> Refused:
    answer = _answer(text)
    detail = str(answer.get("detail", "")) or "(no detail)"
    if location:
        detail = f"redirected to {location}; post to that URL instead"
    fields = answer.get("fields")
    named = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    return Refused(status, str(answer.get("error", "")), detail, named, outgoing.webhook_id)


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3); None when absent."""
    value = error.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _network_reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, TimeoutError):
        return "no answer before the time bound"
    return str(error) or type(error).__name__
