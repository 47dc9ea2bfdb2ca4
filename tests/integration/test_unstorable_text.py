"""NUL characters and lone surrogates in every string the API takes: never a 5xx.

PostgreSQL cannot store a NUL in text or JSON, and a lone surrogate is not Unicode text
(it cannot be encoded to be stored or sent). Each is refused with a 422 that names the
field, or, where a field cleans control characters (a caller's name, a caller ID), taken
cleaned. Path parameters and query parameters are answered 422 naming the parameter too.

The sweep covers every admin route (from the router, so a new one is covered the day it is
added), every documented query parameter, every string of every JSON body, the import's
rows, and every string of every webhook event type.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from notifyd.catalogue.events import CATALOGUE
from notifyd.catalogue.samples import USUAL_SOURCE, sample_event
from notifyd.http.admin import create_admin_app
from tests.conftest import BILLING_SECRET, PBX_SECRET, Running, load_config, running_daemon
from tests.integration.admin_support import OPS_TOKEN, PLACEHOLDERS, admin_config

SECRETS = {"pbx": PBX_SECRET, "billing": BILLING_SECRET}
BAD = {"NUL": "\x00", "lone surrogate": "\ud800"}
# A valid body for every admin operation that takes JSON, to spoil one string at a time.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/v1/admin/subscribers/{account_id}"): {
        "email": "ana@client.example",
        "username": "ana",
        "name": "Ana Popescu",
        "language": "ro",
        "timezone": "Europe/Bucharest",
    },
    ("PATCH", "/v1/admin/subscribers/{account_id}"): {
        "username": "ana",
        "name": "Ana Popescu",
        "language": "ro",
        "timezone": "Europe/Bucharest",
    },
    ("PATCH", "/v1/admin/subscribers/{account_id}/preferences"): {
        "modes": {"calls": "hourly"},
        "quiet_hours": "22:00-07:00",
        "addresses": {"fax": ["fax@client.example"]},
        "extra_emails": ["office@client.example"],
        "digest_time": "08:00",
        "low_credit_threshold": "5.00",
        "language": "en",
        "timezone": "Europe/Bucharest",
    },
    ("POST", "/v1/admin/subscribers/{account_id}/consent"): {
        "marketing": True,
        "source": "web-form",
        "wording_version": "v1",
    },
    ("POST", "/v1/admin/broadcasts"): {
        "kind": "notice.service",
        "subject": {"ro": "Mentenanță", "en": "Maintenance"},
        "body": {"ro": "Lucrări la rețea.", "en": "Network work."},
        "starts_at": "2026-11-22T10:00:00+00:00",
    },
}
IMPORT_ROW = {
    "account_id": "acc-9",
    "email": "ion@client.example",
    "username": "ion",
    "name": "Ion",
    "language": "ro",
    "timezone": "Europe/Bucharest",
    "wording_version": "v1",
}


def spoiled(value: str, bad: str) -> str:
    # Inside the value, so the rest still looks like what the field expects.
    return value[:1] + bad + value[1:]


def strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], bool]]:
    """The path of every string in a JSON value, and whether it is a key (True) or a value."""
    if isinstance(value, str):
        yield path, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), True
            yield from strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, (*path, str(index)))


def with_bad(value: Any, path: tuple[str, ...], is_key: bool, bad: str) -> Any:
    changed = copy.deepcopy(value)
    parent = changed
    for part in path[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = path[-1]
    if is_key:
        parent[spoiled(last, bad)] = parent.pop(last)
    elif isinstance(parent, list):
        parent[int(last)] = spoiled(parent[int(last)], bad)
    else:
        parent[last] = spoiled(parent[last], bad)
    return changed


def names(fields: dict[str, str], path: str) -> bool:
    """The 422's fields name `path`, the field it is part of, or a part of it."""
    return any(
        path == key or path.startswith(f"{key}.") or key.startswith(f"{path}.") for key in fields
    )


async def request(
    daemon: Running, method: str, path: str, body: bytes | None = None, content_type: str = ""
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with daemon.session.request(
        method, f"{daemon.admin_url}{path}", data=body, headers=headers
    ) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def admin_operations() -> list[tuple[str, str]]:
    """(method, path template) of every admin route the app serves."""
    operations = set()
    for route in create_admin_app().router.routes():
        if route.method not in ("HEAD", "OPTIONS") and route.resource is not None:
            operations.add((route.method, "/v1/admin" + route.resource.canonical))
    return sorted(operations)


def filled(template: str, **given: str) -> str:
    return re.sub(
        r"\{(\w+)\}",
        lambda m: quote(given.get(m[1], PLACEHOLDERS[m[1]]), safe="@%"),
        template,
    )


async def test_admin_api_answers_nul_and_lone_surrogates_with_a_422_naming_the_field(
    tmp_path: Path, database_url: str
) -> None:
    problems: list[str] = []
    cleaned: set[str] = set()
    checked = 0

    def expect_422(what: str, status: int, answer: Any, field: str) -> None:
        nonlocal checked
        checked += 1
        fields = (answer or {}).get("fields", {}) if isinstance(answer, dict) else {}
        if status in (200, 201, 202) and "\x00" not in json.dumps(answer, ensure_ascii=False):
            cleaned.add(f"{field} ({what.rsplit('(', 1)[1]}")  # taken without it, as names are
        elif status != 422 or not names(fields, field):
            problems.append(f"{what}: {status} {answer}")

    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        put = BODIES[("PUT", "/v1/admin/subscribers/{account_id}")]
        status, _ = await request(
            daemon,
            "PUT",
            "/v1/admin/subscribers/acc-1",
            json.dumps(put).encode(),
            "application/json",
        )
        assert status in (200, 201)
        async with daemon.session.get(f"{daemon.admin_url}/openapi.json") as response:
            documented = (await response.json())["paths"]

        for method, template in admin_operations():
            body = BODIES.get((method, template))
            operation = documented[template][method.lower()]
            takes_json = "application/json" in operation.get("requestBody", {}).get("content", {})
            assert takes_json == (body is not None), f"{method} {template}: give a body above"
            raw = json.dumps(body).encode() if body is not None else None
            kind = "application/json" if body is not None else ""

            # Path parameters: a NUL is a 422 naming the parameter. A surrogate cannot be
            # written in a URL (its UTF-8 does not exist): its bytes must not give a 5xx.
            for parameter in re.findall(r"\{(\w+)\}", template):
                value = PLACEHOLDERS[parameter]
                path = filled(template, **{parameter: spoiled(value, "\x00")})
                status, answer = await request(daemon, method, path, raw, kind)
                expect_422(f"{method} {path}", status, answer, parameter)
                path = filled(template).replace(quote(value, safe="@"), "a%ED%A0%80b", 1)
                status, answer = await request(daemon, method, path, raw, kind)
                checked += 1
                if status >= 500:
                    problems.append(f"{method} {path}: {status} {answer}")

            # Query parameters, as documented.
            for parameter in operation.get("parameters", []) + documented[template].get(
                "parameters", []
            ):
                if parameter["in"] != "query":
                    continue
                for label, bad in BAD.items():
                    value = quote(spoiled("5", bad), errors="surrogatepass")
                    path = f"{filled(template)}?{parameter['name']}={value}"
                    status, answer = await request(daemon, method, path, raw, kind)
                    if bad == "\x00":
                        expect_422(f"{method} {path}", status, answer, parameter["name"])
                    elif status >= 500:
                        problems.append(f"{method} {path} ({label}): {status} {answer}")

            # Every string of the JSON body, values and keys.
            if body is not None:
                for path_parts, is_key in strings(body):
                    for label, bad in BAD.items():
                        spoilt = json.dumps(with_bad(body, path_parts, is_key, bad)).encode()
                        status, answer = await request(
                            daemon, method, filled(template), spoilt, "application/json"
                        )
                        field = ".".join(path_parts)
                        if is_key:
                            # Named on its container, or as the unknown field it now is.
                            container = ".".join(path_parts[:-1]) or "body"
                            field = ".".join((*path_parts[:-1], spoiled(path_parts[-1], bad)))
                            fields = answer.get("fields", {}) if status == 422 else {}
                            if names(fields, container):
                                field = container
                        expect_422(
                            f"{method} {template} {field} ({label}{', key' if is_key else ''})",
                            status,
                            answer,
                            field,
                        )

        # The import's rows, as JSON lines and as CSV (which cannot write a surrogate: its
        # bytes are UTF-8): each bad value is reported on its line and field.
        header = ",".join(IMPORT_ROW)
        for label, bad in [*BAD.items(), ("NUL in CSV", "\x00")]:
            for field, value in IMPORT_ROW.items():
                row = {**IMPORT_ROW, field: spoiled(value, bad)}
                if label.endswith("CSV"):
                    content = f"{header}\n{','.join(row.values())}\n".encode()
                    kind = "text/csv"
                else:
                    content, kind = json.dumps(row).encode() + b"\n", "application/x-ndjson"
                status, answer = await request(
                    daemon, "POST", "/v1/admin/subscribers/import", content, kind
                )
                checked += 1
                if status == 200 and field == "name" and bad == "\x00":
                    continue  # taken cleaned, as names are
                errors = answer.get("errors", []) if isinstance(answer, dict) else []
                if status != 207 or not errors or not names(errors[0]["fields"], field):
                    problems.append(f"import {field} ({label}): {status} {answer}")
    assert problems == [], "\n".join(problems)
    # Only the fields that clean control characters take a NUL; a surrogate, never.
    assert cleaned == {"name (NUL)", "subject.ro (NUL)", "subject.en (NUL)"}, cleaned
    assert checked > 100


async def test_webhooks_answer_nul_and_lone_surrogates_with_a_422_naming_the_field_or_clean_them(
    tmp_path: Path, database_url: str
) -> None:
    problems: list[str] = []
    cleaned: set[str] = set()
    checked = 0
    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        for event_type in sorted(CATALOGUE):
            event = sample_event(event_type, "acc-1")
            source = USUAL_SOURCE[event_type]
            for path_parts, is_key in strings(event):
                if is_key:  # a spoilt field name is a missing field and an ignored one
                    continue
                for label, bad in BAD.items():
                    status, answer = await daemon.post(
                        source, with_bad(event, path_parts, False, bad), SECRETS[source]
                    )
                    checked += 1
                    field = ".".join(path_parts)
                    if status == 202:
                        # Taken cleaned, as a caller's name is: stored, so PostgreSQL had it.
                        cleaned.add(f"{path_parts[-1]} ({label})")
                    elif status != 422 or not names(answer.get("fields", {}), field):
                        problems.append(f"{event_type} {field} ({label}): {status} {answer}")
    assert problems == [], "\n".join(problems)
    # Only the fields that clean control characters take a NUL, and the language and time
    # zone, which fall back to the default when not understood (catalogue/locale.py); a
    # surrogate, never.
    assert cleaned <= {
        f"{name} (NUL)"
        for name in (
            "caller_name",
            "caller_number",
            "called_number",
            "remote_number",
            "name",
            "method",
            "changed_by",
            "user_agent",
            "language",
            "timezone",
        )
    }, cleaned
    assert checked > 200
