"""The subscriber's rights through the admin API (SPEC §2): the export of everything held
about an account (streamed), and the account's erasure.

The work is storage/export.py's and storage/erasure.py's; `notifyd privacy export|erase`
(cli.py) does the same from a shell. The export's schema is served beside the OpenAPI
document (http/openapi.py).
"""

from __future__ import annotations

import contextlib

import structlog
from aiohttp import web
from pydantic import Field

from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.pages.shell import CONTENT_SECURITY_POLICY
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, respond
from notifyd.storage import erasure, export

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


@routes.get(
    "/subscribers/{account_id}/export",
    "Everything held about an account",
    scope="privacy",
    action="subscriber.exported",
    description="One JSON document (streamed; its JSON Schema: /export.schema.json): the "
    "subscriber, its addresses with their suppression and bounces, consent history, credit, "
    "events with their decisions, attachments' metadata (not their bytes) and notices with "
    "their delivery state and the relay's replies. Read in one consistent snapshot.",
    answers={
        200: Answer("The export", export.ExportDocument),
        404: error("Nothing is held about this account"),
    },
)
async def export_account(request: web.Request) -> web.StreamResponse:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        if not await export.account_known(conn, account_id):
            raise no_subscriber(account_id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Content-Disposition": 'attachment; filename="notifyd-export.json"',
                # The middleware's headers come after the handler: too late for a stream.
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "X-Request-Id": structlog.contextvars.get_contextvars().get("request_id", ""),
            }
        )
        await response.prepare(request)
        async with contextlib.aclosing(
            export.document(conn, account_id, runtime.clock())
        ) as chunks:
            async for chunk in chunks:
                await response.write(chunk.encode())
    await response.write_eof()
    log.info("account exported", token_name=request[TOKEN_NAME], account_id=account_id)
    return response


class Erased(Reply):
    """What an erasure did."""

    account_id: str
    already_erased: bool = Field(description="It had been erased before (this found the rest)")
    requested_at: Timestamp
    finished_at: Timestamp
    rows: dict[str, int] = Field(description="Rows deleted or stripped, per step")
    kept_notices: int = Field(description="Billing notices kept, stripped, for accounting")


@routes.delete(
    "/subscribers/{account_id}",
    "Erase an account",
    scope="privacy",
    action="subscriber.erased",
    description="Deletes everything held about the account, in short transactions, except "
    "its billing notices within billing retention, which keep only what accounting needs. "
    "Its addresses stay off marketing as keyed hashes. Idempotent: run again, it finishes "
    "an erasure that stopped half-way and says whether one was done before.",
    answers={200: Answer("Erased", Erased), 404: error("Nothing is held about this account")},
)
async def erase_account(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        erased = await erasure.erase(
            conn,
            account_id,
            runtime.erasure_key,
            requested_by=request[TOKEN_NAME],
            settings=runtime.settings,
        )
    if erased is None:
        raise no_subscriber(account_id)
    log.info(
        "account erased",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        already_erased=erased.already_erased,
        kept_notices=erased.kept_notices,
        rows=erased.rows,
    )
    return respond(Erased.model_validate(erased))
