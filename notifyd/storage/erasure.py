"""The erasure of one account (SPEC §2, the right to erasure), and the keyed hashes that
keep an erased address off marketing (tables `erasures`, `erased_addresses`).

`erase()` deletes everything of the account but its billing notices within billing
retention, which lose every field accounting does not need. It works in bounded
transactions of at most [privacy] erase_batch_rows rows, each step run until it finds
nothing left, and every step does nothing once done: run again after a crash (or twice), it
finishes the work. The subscriber row goes last, so a resumed erasure still finds the
account's addresses; their HMACs are kept (`erasure_key`), and `resuppress()` puts an
address given again back on the suppression list: storage/subscribers.py calls it on every
save that gives an account an address (webhooks, imports, the admin API, preferences).
Called by `notifyd privacy erase` (privacy_cli.py) and DELETE /v1/admin/subscribers/{id}
(http/admin/privacy.py); what it reads of an account is what storage/export.py exports. A
finished erasure's record goes with the audit trail's retention (`purge_erasures`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from notifyd.settings import Settings
from notifyd.storage import export, queries, waiting
from notifyd.storage.consent import MARKETING
from notifyd.storage.db import Conn

SQL = queries.load("erasure")
KEY_FILE = "erasure-key"
# What a kept billing notice keeps of its event (the rest of the event is deleted).
ACCOUNTING_FIELDS = ("amount", "currency", "new_balance", "payment_id", "invoice_number")

# The batched steps, in order; each is run until it changes no row.
STEPS = (
    "cancel_pending",
    "delete_callbacks",
    "delete_soft_bounce_reports",
    "strip_billing_notices",
    "delete_notices",
    "delete_events",
    "delete_consent",
    "delete_balances",
    "delete_credit_states",
    "delete_statements",
)

# What the erasure does with each table that holds something of an account.
TABLES: Mapping[str, str] = {
    "subscribers": "deleted, last (finish_erasure)",
    "notices": "deleted; billing ones within billing retention stripped (recipient '')",
    "events": "deleted (delete_events)",
    "callbacks": "deleted (delete_callbacks), also those of the billing notices kept",
    "soft_bounce_reports": "deleted (delete_soft_bounce_reports), also those of the billing "
    "notices kept",
    "attachments": "deleted with their events (ON DELETE CASCADE)",
    "consent_events": "deleted (delete_consent)",
    "balance_history": "deleted (delete_balances)",
    "credit_states": "deleted (delete_credit_states)",
    "credit_statements": "deleted (delete_statements)",
    "suppressions": "the account's addresses' rows deleted, kept as erased_addresses hashes",
    "address_health": "the account's addresses' rows deleted (forget_addresses)",
    "erasures": "kept: when the erasure was asked for and done, and by whom",
    "webhook_receipts": "kept: nothing personal, and a retried webhook stays a duplicate",
    "broadcasts": "kept: shared by every account",
    "erased_addresses": "kept: HMACs of the addresses, no clear address",
    "audit": "kept, for its own retention: what was done and by whom, never personal data",
}


def erasure_key(configured: str, state_dir: Path) -> bytes:
    """The key of the address hashes: the configured one ([privacy] erasure_key; hosts
    sharing a database must share it), or one generated once and kept in the state folder.
    Losing it only means an erased address given again is no longer recognised."""
    if configured:
        return configured.encode()
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another command made it meanwhile
            pass
        else:
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
    return bytes.fromhex(path.read_text().strip())


def address_hash(key: bytes, address: str) -> bytes:
    return hmac.new(key, address.strip().lower().encode(), hashlib.sha256).digest()


async def remember(conn: Conn, key: bytes, addresses: Iterable[str]) -> None:
    """Keep `addresses` off marketing as keyed hashes only: an erasure's addresses, and an
    unsubscribe link of an erased account pressed later (http/pages/unsubscribe.py), which
    must not bring the address back in clear."""
    await conn.execute(SQL["remember_hashes"], [address_hash(key, a) for a in addresses])


async def resuppress(conn: Conn, key: bytes, addresses: Iterable[str]) -> list[str]:
    """Put those of `addresses` that were erased back on the suppression list (only the
    subscriber's own new consent may take one off), cancelling the marketing notices to
    them not sent yet; the addresses put back. storage/subscribers.py calls it for every
    address a save gives an account."""
    given = sorted({a.strip().lower() for a in addresses})
    if not given:
        return []
    rows = await conn.fetch(SQL["resuppress"], given, [address_hash(key, a) for a in given])
    back = sorted({row["address"] for row in rows})
    await waiting.cancel_waiting_to(conn, back, [MARKETING], waiting.UNSUBSCRIBED)
    return back


@dataclass(frozen=True)
class Erased:
    account_id: str
    # A finished erasure of the account was found (this one found what came after, if any).
    already_erased: bool
    requested_at: datetime
    finished_at: datetime
    # Rows changed per step (and "addresses" for the addresses hashed).
    rows: dict[str, int]
    kept_notices: int


Progress = Callable[[str, int], None]


async def erase(
    conn: Conn,
    account_id: str,
    key: bytes,
    *,
    requested_by: str,
    settings: Settings,
    progress: Progress = lambda step, rows: None,
) -> Erased | None:
    """Erase the account; None when nothing is held about it. Billing notices younger than
    [retention] billing_days are kept, stripped; at most [privacy] erase_batch_rows rows
    change in a transaction. `progress` is told each batch committed (step, rows)."""
    billing_retention = timedelta(days=settings.retention.billing_days)
    batch = settings.privacy.erase_batch_rows
    rows: dict[str, int] = {}
    async with conn.transaction():
        if not await export.account_known(conn, account_id):
            return None
        begun = await conn.fetchrow(SQL["begin_erasure"], account_id, requested_by)
        assert begun is not None
        addresses = [r["address"] for r in await conn.fetch(SQL["account_addresses"], account_id)]
        await remember(conn, key, addresses)
        await conn.fetchval(SQL["forget_addresses"], account_id, addresses)
        await conn.execute(SQL["close_account"], account_id)
    rows["addresses"] = len(addresses)
    progress("addresses", len(addresses))
    extra: dict[str, tuple[object, ...]] = {
        "strip_billing_notices": (billing_retention, list(ACCOUNTING_FIELDS)),
        "delete_notices": (billing_retention,),
    }
    for step in STEPS:
        rows[step] = 0
        while True:
            async with conn.transaction():
                status = await conn.execute(SQL[step], account_id, batch, *extra.get(step, ()))
            changed = int(status.rsplit(" ", 1)[1])
            if not changed:
                break
            rows[step] += changed
            progress(step, changed)
    async with conn.transaction():
        done = await conn.fetchrow(SQL["finish_erasure"], account_id)
    assert done is not None
    return Erased(
        account_id=account_id,
        already_erased=begun["finished_at"] is not None,
        requested_at=begun["requested_at"],
        finished_at=done["finished_at"],
        rows=rows,
        kept_notices=done["kept_notices"],
    )
