"""docs/integrations.md "Delivery callbacks": the doc's configuration blocks, filled in and
pointed at a local receiver, drive a running notifyd, and what it posts there is what the
doc's sample POST shows: the path, the Standard Webhooks headers (verified with the
callback's own secret), and a body of the same keys and shapes, down to the source's
webhook-id and the relay's 250."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
)
from tests.integration.admin_support import admin_config
from tests.integration.callbacks_support import CALLBACK_SECRET
from tests.integration.doc_support import filled, like, merged
from tests.integration.send_support import serving, snippet

DOC_HOST = "https://pbx.example.net"
# The doc's sample's own webhook-id, sent by the test as the PBX's hook would.
VOICEMAIL_ID = "vm-default-1001-1763800100"


def documented_post() -> tuple[str, list[str], dict[str, Any]]:
    """The doc's sample POST: its path, its header names, its body."""
    head, body = snippet("callback-post").split("\n\n", 1)
    request, *headers = head.splitlines()
    method, path = request.split()
    assert method == "POST"
    return path, [line.split(":", 1)[0] for line in headers], json.loads(body)


async def test_the_documented_callback_config_posts_what_the_doc_shows(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    posts: list[tuple[str, dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{path:.*}", receive)
    secret_file = tmp_path / "pbx-callback.secret"
    secret_file.write_text(f"{CALLBACK_SECRET}\n")
    async with serving(app) as receiver:
        source = filled(snippet("callback-source"), secret_file).replace(DOC_HOST, receiver)
        config = merged(admin_config(tmp_path, database_url, smtp_sink.port), source)
        merged(config, snippet("callbacks-defaults"))
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            voicemail = sample_event("voicemail.received", "acc-1")
            status, _ = await daemon.post("pbx", voicemail, PBX_SECRET, webhook_id=VOICEMAIL_ID)
            assert status == 202

            async def told() -> list[Any]:
                return [post for post in posts if VOICEMAIL_ID.encode() in post[2]]

            [(path, headers, raw)] = await eventually(told, "the voicemail's callback")
    doc_path, doc_headers, doc_body = documented_post()
    assert path == doc_path
    assert all(name in headers for name in doc_headers), headers
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-timestamp"].isdigit()
    assert headers["webhook-signature"].startswith("v1,")
    verified = Webhook(CALLBACK_SECRET).verify(raw, {k.lower(): v for k, v in headers.items()})
    like(doc_body, verified)
