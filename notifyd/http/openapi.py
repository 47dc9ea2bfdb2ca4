"""GET /openapi.json: the OpenAPI 3.1 contract of the webhook and admin endpoints.

Request schemas come from the same pydantic models that validate the requests, and a test
compares the paths here with the routes the application really serves.
"""

from __future__ import annotations

from typing import Any, get_args

from aiohttp import web

from notifyd import __version__
from notifyd.catalogue.events import CATALOGUE, Envelope
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.admin.broadcasts import BroadcastBody
from notifyd.http.admin.consent import ConsentBody
from notifyd.http.admin.preferences import PreferencesPatch
from notifyd.http.admin.subscribers import SubscriberBody, SubscriberPatch
from notifyd.model import MODES
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.storage.broadcasts import BroadcastKind, BroadcastState
from notifyd.storage.notices import NoticeState

ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SUBSCRIBER = {
    "type": "object",
    "required": ["account_id", "email"],
    "properties": {
        "account_id": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "username": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "language": {"type": ["string", "null"], "enum": ["ro", "en", None]},
        "timezone": {"type": ["string", "null"]},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
        "voicemail_audio": {"type": "boolean"},
        "low_credit_threshold": {"type": ["string", "null"]},
    },
}
NOTICE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "event_id": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "null for a digest",
        },
        "kind": {"type": "string"},
        "category": {"type": "string"},
        "recipient": {"type": "string"},
        "state": {"type": "string", "enum": list(get_args(NoticeState))},
        "attempts": {"type": "integer"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "due_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "last_error": {"type": ["string", "null"]},
        "smtp_reply": {"type": ["string", "null"]},
    },
}
# What was decided for an event: it queued notices (each says why), queued nothing (the
# code and sentence say why), or was routed before decisions were stored.
DECISION = {
    "type": "object",
    "required": ["outcome", "code", "reason"],
    "properties": {
        "outcome": {"type": "string", "enum": ["queued", "nothing_queued", "not_recorded"]},
        "code": {"type": "string"},
        "reason": {"type": ["string", "null"]},
    },
}
EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "account_id": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "received_at": {"type": "string", "format": "date-time"},
        "notices": {"type": "integer", "description": "how many notices it queued"},
        "decision": DECISION,
    },
}
DEAD_LETTER = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "account_id": {"type": "string"},
        "kind": {"type": "string"},
        "category": {"type": "string"},
        "recipient": {"type": "string"},
        "attempts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "smtp_reply": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "failed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
PREFERENCES = {
    "type": "object",
    "properties": {
        "account_id": {"type": "string"},
        "explicit": {"type": "object", "description": "Only what the subscriber chose"},
        "effective": {"type": "object", "description": "What applies now, defaults included"},
    },
}
CONSENT = {
    "type": "object",
    "properties": {
        "account_id": {"type": "string"},
        "marketing": {
            "type": "object",
            "properties": {
                "consent": {"type": "boolean"},
                "suppressed": {"type": "boolean"},
                "sendable": {"type": "boolean"},
            },
        },
        "history": {"type": "array", "items": {"type": "object"}},
        "event": {"type": "object"},
    },
}
IMPORT_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "imported": {"type": "integer"},
        "failed": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "last_line": {"type": "integer"},
                    "fields": {"type": "object"},
                },
            },
        },
        "multi_line_rows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"line": {"type": "integer"}, "last_line": {"type": "integer"}},
            },
        },
    },
}
# A file refused at `line`: the error, and what was imported from the lines before it.
IMPORT_REFUSED = {
    "allOf": [
        ERROR,
        {
            "type": "object",
            "properties": {"line": {"type": "integer"}, **IMPORT_RESULT["properties"]},
        },
    ]
}
BROADCAST = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "kind": {"type": "string", "enum": list(get_args(BroadcastKind))},
        "state": {"type": "string", "enum": list(get_args(BroadcastState))},
        "starts_at": {"type": "string", "format": "date-time"},
        "queued": {"type": "integer"},
        "sent": {"type": "integer"},
        "created_by": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "subject": {"type": "object"},
        "notices_withdrawn": {"type": "integer"},
    },
}
ACCOUNT_ID = {"name": "account_id", "in": "path", "required": True, "schema": {"type": "string"}}
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def document() -> dict[str, Any]:
    described = _document()
    # Every route refuses a path or query parameter holding a NUL (a middleware in app.py).
    for item in described["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = item.get("parameters", []) + operation.get("parameters", [])
            if any(parameter["in"] in ("path", "query") for parameter in parameters):
                operation["responses"].setdefault(
                    "422", _error("A parameter is invalid (or holds a NUL character)")
                )
    return described


def _document() -> dict[str, Any]:
    envelope = Envelope.model_json_schema()
    envelope["properties"]["type"]["enum"] = sorted(CATALOGUE)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notifyd",
            "version": __version__,
            "description": "Signed webhooks in (Standard Webhooks), email notices out; the "
            "admin API manages subscribers and their notices.",
        },
        "paths": {
            "/v1/webhooks/{source}": {
                "post": {
                    "summary": "Receive a signed event from a configured source",
                    "description": "Standard Webhooks signature headers (webhook-id, "
                    "webhook-timestamp, webhook-signature). 202 only once the event is "
                    "committed; a repeated webhook-id answers duplicate: true.",
                    "parameters": [
                        {
                            "name": "source",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        *[
                            {
                                "name": header,
                                "in": "header",
                                "required": True,
                                "schema": {"type": "string"},
                            }
                            for header in ("webhook-id", "webhook-timestamp", "webhook-signature")
                        ],
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": envelope}},
                    },
                    "responses": {
                        "202": _json("Stored", {"$ref": "#/components/schemas/Receipt"}),
                        "200": _json("Already stored", {"$ref": "#/components/schemas/Receipt"}),
                        "400": _error("Not JSON"),
                        "401": _error("Bad or missing signature, stale timestamp"),
                        "403": _error("Sender outside the source's allow_from"),
                        "404": _error("Unknown source"),
                        "413": _error("Body over the limit"),
                        "415": _error("Not JSON content"),
                        "422": _error("Unknown type or invalid data; `fields` names each error"),
                        "503": _error(
                            "The database cannot take it now, or too many bodies are being "
                            "received; retry"
                        ),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "Ready: database reachable and schema current",
                    "responses": {"200": {"description": "ready"}, "503": _error("not ready")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text", "content": {"text/plain": {}}}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/v1/admin/subscribers/{account_id}": {
                "parameters": [ACCOUNT_ID],
                "get": {
                    "summary": "A subscriber",
                    "security": ADMIN,
                    "responses": {
                        "200": _json("The subscriber", SUBSCRIBER),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                    },
                },
                "put": {
                    "summary": "Create or replace a subscriber",
                    "description": "The whole subscriber: every field must be given (null "
                    "for none) and replaces the stored one. To change only some fields, use "
                    "PATCH. Preferences, consent and closing are not changed.",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": SubscriberBody.model_json_schema()}
                        },
                    },
                    "responses": {
                        "200": _json("Replaced", SUBSCRIBER),
                        "201": _json("Created", SUBSCRIBER),
                        "400": _error("Not JSON"),
                        "401": _error("No valid admin token"),
                        "422": _error("Invalid or missing fields; `fields` names each"),
                    },
                },
                "patch": {
                    "summary": "Change some fields of a subscriber",
                    "description": "Only the fields given change; null clears one (not "
                    "email). Preferences, consent and closing are not changed.",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": SubscriberPatch.model_json_schema()}
                        },
                    },
                    "responses": {
                        "200": _json("Changed", SUBSCRIBER),
                        "400": _error("Not JSON"),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                        "422": _error("Invalid fields; `fields` names each"),
                    },
                },
            },
            "/v1/admin/subscribers/import": {
                "post": {
                    "summary": "Create or update subscribers from CSV or JSON lines",
                    "description": "Streamed and written in batches; idempotent. Columns/keys: "
                    "account_id, email, username?, name?, language?, timezone?, marketing?, "
                    "wording_version?. Consent from a file is recorded with source 'import' "
                    "and never lifts a suppression.",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": _json("All rows imported", IMPORT_RESULT),
                        "207": _json("Some rows refused; the others imported", IMPORT_RESULT),
                        "400": _json(
                            "A line cannot be read (not UTF-8, over 16 KiB, a quote never"
                            " closed); the rows before it imported",
                            IMPORT_REFUSED,
                        ),
                        "401": _error("No valid admin token"),
                        "415": _error("Neither CSV nor JSON lines"),
                        "422": _json("The CSV header does not name the columns", IMPORT_REFUSED),
                    },
                }
            },
            "/v1/admin/subscribers/{account_id}/preferences": {
                "parameters": [ACCOUNT_ID],
                "get": {
                    "summary": "A subscriber's explicit choices and what applies now",
                    "security": ADMIN,
                    "responses": {
                        "200": _json("Explicit and effective preferences", PREFERENCES),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                    },
                },
                "patch": {
                    "summary": "Change some preferences; null returns a field to the default",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": PreferencesPatch.model_json_schema()}
                        },
                    },
                    "responses": {
                        "200": _json("Explicit and effective preferences", PREFERENCES),
                        "400": _error("Not JSON"),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                        "422": _error(
                            "Invalid fields, each named in `fields` (`modes.security`: "
                            "mandatory categories cannot change)"
                        ),
                    },
                },
            },
            "/v1/admin/subscribers/{account_id}/consent": {
                "parameters": [ACCOUNT_ID],
                "get": {
                    "summary": "Marketing consent now, and its whole history",
                    "security": ADMIN,
                    "responses": {
                        "200": _json("Consent state and history", CONSENT),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                    },
                },
                "post": {
                    "summary": "Record a grant or withdrawal of marketing consent",
                    "description": "A withdrawal puts the address on the suppression list; "
                    "only a grant with source 'subscriber' takes it off.",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": ConsentBody.model_json_schema()}
                        },
                    },
                    "responses": {
                        "201": _json("Recorded", CONSENT),
                        "400": _error("Not JSON"),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                        "422": _error("Invalid fields"),
                    },
                },
            },
            "/v1/admin/subscribers/{account_id}/notices": {
                "parameters": [ACCOUNT_ID],
                "get": {
                    "summary": "Recent notices of a subscriber, with state and reasons",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            "Newest first",
                            {
                                "type": "object",
                                "properties": {
                                    "account_id": {"type": "string"},
                                    "notices": {"type": "array", "items": NOTICE},
                                    "events_without_notices": {"type": "array", "items": EVENT},
                                },
                            },
                        ),
                        "401": _error("No valid admin token"),
                        "404": _error("No such subscriber"),
                        "422": _error("Bad limit"),
                    },
                },
            },
            "/v1/admin/subscribers/{account_id}/events": {
                "parameters": [ACCOUNT_ID],
                "get": {
                    "summary": "Recent events of an account (a subscriber or not), each with"
                    " what was decided and why",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                        {
                            "name": "before",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            "Newest first",
                            {
                                "type": "object",
                                "properties": {
                                    "account_id": {"type": "string"},
                                    "subscriber": {"type": "boolean"},
                                    "events": {"type": "array", "items": EVENT},
                                },
                            },
                        ),
                        "401": _error("No valid admin token"),
                        "404": _error("No subscriber and no events for this account"),
                        "422": _error("Bad limit or before"),
                    },
                },
            },
            "/v1/admin/events/{event_id}": {
                "parameters": [
                    {
                        "name": "event_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "get": {
                    "summary": "One event: what was decided and why, and its notices",
                    "security": ADMIN,
                    "responses": {
                        "200": _json(
                            "The event",
                            {
                                **EVENT,
                                "properties": {
                                    **EVENT["properties"],
                                    "notices": {"type": "array", "items": NOTICE},
                                },
                            },
                        ),
                        "401": _error("No valid admin token"),
                        "404": _error("No such event"),
                    },
                },
            },
            "/v1/unsubscribe/{token}": {
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "get": {
                    "summary": "The unsubscribe page of a signed link (changes nothing)",
                    "responses": {
                        "200": {
                            "description": "A page with a button",
                            "content": {"text/html": {}},
                        },
                        "404": {"description": "Not a valid link", "content": {"text/html": {}}},
                    },
                },
                "post": {
                    "summary": "Unsubscribe at once (RFC 8058 one-click, or the page's button)",
                    "description": "A mail provider's one-click POST carries no Origin and no "
                    "form token; a browser's must come from the page, with its form_token.",
                    "responses": {
                        "200": {"description": "Unsubscribed", "content": {"text/html": {}}},
                        "403": {
                            "description": "From another site, or a browser's POST without "
                            "the page's form token; nothing changed",
                            "content": {"text/html": {}},
                        },
                        "404": {"description": "Not a valid link", "content": {"text/html": {}}},
                    },
                },
            },
            "/v1/preferences/{token}": {
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "get": {
                    "summary": "The subscriber's preference page, from the link in every email",
                    "responses": {
                        "200": {"description": "A form", "content": {"text/html": {}}},
                        "404": {"description": "Not a valid link", "content": {"text/html": {}}},
                    },
                },
                "post": {
                    "summary": "Save the preference form; unchanged values keep following the "
                    "defaults",
                    "requestBody": {
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        **{
                                            f"mode.{category}": {
                                                "type": "string",
                                                "enum": list(MODES),
                                            }
                                            for category in CONFIGURABLE
                                            if category != "marketing"
                                        },
                                        "quiet_hours": {"type": "string"},
                                        "digest_time": {"type": "string"},
                                        "language": {"type": "string", "enum": list(LANGUAGES)},
                                        "offers": {"type": "string", "enum": ["yes"]},
                                        "form_token": {
                                            "type": "string",
                                            "description": "From the page's form: proves "
                                            "the POST came from it",
                                        },
                                    },
                                    "required": ["form_token"],
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {"description": "Saved", "content": {"text/html": {}}},
                        "403": {
                            "description": "From another site, or without the page's form "
                            "token; nothing saved",
                            "content": {"text/html": {}},
                        },
                        "404": {"description": "Not a valid link", "content": {"text/html": {}}},
                        "413": {"description": "Not the form", "content": {"text/plain": {}}},
                        "422": {
                            "description": "A value is wrong; nothing saved",
                            "content": {"text/html": {}},
                        },
                    },
                },
            },
            "/v1/admin/broadcasts": {
                "post": {
                    "summary": "Send a mandatory notice to every open account",
                    "description": "Fanned out in batches in the background; resumes after a "
                    "restart; progress via GET, cancel via DELETE.",
                    "security": ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": BroadcastBody.model_json_schema()}
                        },
                    },
                    "responses": {
                        "202": _json("Accepted; fan-out started or scheduled", BROADCAST),
                        "400": _error("Not JSON"),
                        "401": _error("No valid admin token"),
                        "422": _error("Invalid fields"),
                    },
                }
            },
            "/v1/admin/broadcasts/{broadcast_id}": {
                "parameters": [
                    {
                        "name": "broadcast_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "get": {
                    "summary": "A broadcast's progress",
                    "security": ADMIN,
                    "responses": {
                        "200": _json("Progress", BROADCAST),
                        "401": _error("No valid admin token"),
                        "404": _error("No such broadcast"),
                    },
                },
                "delete": {
                    "summary": "Cancel a broadcast; notices not yet sent are withdrawn",
                    "security": ADMIN,
                    "responses": {
                        "200": _json("Cancelled", BROADCAST),
                        "401": _error("No valid admin token"),
                        "404": _error("No such broadcast"),
                        "409": _error("Already done or cancelled"),
                    },
                },
            },
            "/v1/admin/dead-letters": {
                "get": {
                    "summary": "Failed notices, newest first, with the last SMTP reply",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                        {"name": "category", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "before",
                            "in": "query",
                            "description": "Only those failed before this time (next page)",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            "Newest first",
                            {
                                "type": "object",
                                "properties": {
                                    "dead_letters": {"type": "array", "items": DEAD_LETTER}
                                },
                            },
                        ),
                        "401": _error("No valid admin token"),
                        "422": _error("Bad limit, category or time"),
                    },
                }
            },
            "/v1/admin/undeliverable": {
                "get": {
                    "summary": "Addresses marked undeliverable after repeated hard bounces",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            "Newest first",
                            {
                                "type": "object",
                                "properties": {
                                    "undeliverable": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "address": {"type": "string"},
                                                "hard_bounces": {"type": "integer"},
                                                "last_reply": {"type": ["string", "null"]},
                                                "last_bounce_at": {
                                                    "type": ["string", "null"],
                                                    "format": "date-time",
                                                },
                                                "undeliverable_at": {
                                                    "type": "string",
                                                    "format": "date-time",
                                                },
                                            },
                                        },
                                    }
                                },
                            },
                        ),
                        "401": _error("No valid admin token"),
                        "422": _error("Bad limit"),
                    },
                }
            },
            "/v1/admin/undeliverable/{address}": {
                "delete": {
                    "summary": "Forget an address's bounces (the mailbox works again)",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "address",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "204": {"description": "Forgotten"},
                        "401": _error("No valid admin token"),
                        "404": _error("No bounce record for this address"),
                    },
                }
            },
            "/v1/admin/notices/{notice_id}/retry": {
                "post": {
                    "summary": "Queue a failed notice again",
                    "security": ADMIN,
                    "parameters": [
                        {
                            "name": "notice_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "202": {"description": "Queued"},
                        "401": _error("No valid admin token"),
                        "404": _error("No such notice"),
                        "409": _error("The notice is not failed"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": 'A token whose SHA-256 is in [admin.tokens] as "sha256:<hex>".',
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "Receipt": {
                    "type": "object",
                    "required": ["event_id", "duplicate"],
                    "properties": {
                        "event_id": {"type": "string", "format": "uuid"},
                        "duplicate": {"type": "boolean"},
                    },
                },
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
