"""`notifyd privacy ACTION ACCOUNT_ID`: the subscriber's rights (SPEC §2) from a shell,
declared into cli.py's `privacy` group. `export` writes what storage/export.py reads (the
document GET /v1/admin/subscribers/{id}/export serves); `erase` runs storage/erasure.py
(as DELETE /v1/admin/subscribers/{id} does), telling each batch on stderr; `restrict` and
`lift` run intake/restriction.py (as PUT and DELETE …/restriction do).

An account nothing is held about exits EXIT_UNKNOWN_ACCOUNT with one line on stderr; an
export that cannot be written, EXIT_CANNOT_WRITE (output.py: a reader gone, 141); a database
that does not answer, 69 (migrate_cli.py's one line).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from notifyd import unstorable
from notifyd.output import reader_went_away
from notifyd.settings import Settings

if TYPE_CHECKING:  # the storage is imported when a command runs, not for every `notifyd`
    from notifyd.storage.db import Conn

# sysexits.h EX_NOUSER ("addressee unknown").
EXIT_UNKNOWN_ACCOUNT = 67
# As argparse exits for a command line it cannot take.
EXIT_USAGE = 2
# An operator at a shell waits this long for a database that is starting or restarting
# (the embedded one's back-off), then is told it is unreachable: exit 69, as `migrate`.
PATIENCE_SECONDS = 10.0
# sysexits.h EX_CANTCREAT: the export's file or stdout cannot be written (as `notifyd send`'s
# unwritable spool).
EXIT_CANNOT_WRITE = 73


def declare(actions: argparse._SubParsersAction[argparse.ArgumentParser], config: str) -> None:
    """The actions of `notifyd privacy`, each taking --config as every command does."""
    exporting = actions.add_parser(
        "export", help="write everything held about an account as JSON (stdout or --output)"
    )
    exporting.add_argument("--output", "-o", help="write to this file instead of stdout")
    erasing = actions.add_parser(
        "erase",
        help="erase an account but its billing notices within retention (stripped); "
        "run it again to finish one that stopped",
    )
    restricting = actions.add_parser(
        "restrict", help="hold every notice of the account but security and service ones"
    )
    lifting = actions.add_parser(
        "lift", help="lift the restriction: release what is within its lifetime, cancel the rest"
    )
    for action in (exporting, erasing, restricting, lifting):
        action.add_argument("account_id", metavar="ACCOUNT_ID")
        action.add_argument("--config", "-c", default=config, help=f"TOML file (default {config})")


# What each action is in the audit trail, as the admin API's routes name it.
AUDITED = {
    "export": "subscriber.exported",
    "erase": "subscriber.erased",
    "restrict": "subscriber.restricted",
    "lift": "subscriber.restriction_lifted",
}


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from notifyd.logs import configure
    from notifyd.migrate_cli import one_line_when_unreachable
    from notifyd.storage import audit, db

    # Bytes that are not UTF-8 reach argv as lone surrogates: no account has such an id,
    # and PostgreSQL cannot even look one up.
    wrong = unstorable.problem(args.account_id)
    if wrong is not None:
        print(f"notifyd privacy: ACCOUNT_ID {wrong}", file=sys.stderr)
        return EXIT_USAGE
    configure(settings.logging.level, settings.logging.format, stream=sys.stderr)

    async def act() -> int:
        async with (
            db.open_database(
                settings.database, settings.pgdata_dir, patience=PATIENCE_SECONDS
            ) as database,
            database.pool.acquire() as conn,
        ):
            code = await _act(settings, conn, args)
            if code == 0:
                await audit.record(conn, audit.CLI, AUDITED[args.action], args.account_id)
            return code

    return await one_line_when_unreachable("notifyd privacy: ", act())


async def _act(settings: Settings, conn: Conn, args: argparse.Namespace) -> int:
    if args.action in ("restrict", "lift"):
        return await restriction(settings, conn, args.action, args.account_id)
    if args.action == "export":
        return await _export(conn, args.account_id, args.output)
    return await erase(settings, conn, args.account_id)


async def _export(conn: Conn, account_id: str, output: str | None) -> int:
    """To stdout, or to `output` through a file of the owner's alone (mode 0600: it holds a
    subscriber's data) renamed into place when whole: a failed or refused export leaves no
    file, and an older export there is replaced only by a complete one."""
    if output is None:
        try:
            return await export_to(conn, account_id, sys.stdout)
        except BrokenPipeError:  # `| head`
            return reader_went_away()
        except OSError as error:
            return _cannot_write("to standard output", error)
    target = Path(output)
    part: Path | None = None
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        part = Path(name)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            code = await export_to(conn, account_id, out)
        if code == 0:
            part.replace(target)
            part = None
        return code
    except OSError as error:
        return _cannot_write(str(target), error)
    finally:
        if part is not None:
            part.unlink(missing_ok=True)


def _cannot_write(where: str, error: OSError) -> int:
    print(f"notifyd privacy export: cannot write {where}: {error.strerror}", file=sys.stderr)
    return EXIT_CANNOT_WRITE


def _unknown(account_id: str) -> int:
    print(f"nothing is held about account {account_id!r}", file=sys.stderr)
    return EXIT_UNKNOWN_ACCOUNT


async def export_to(conn: Conn, account_id: str, out: TextIO) -> int:
    from notifyd.storage import export

    if not await export.account_known(conn, account_id):
        return _unknown(account_id)
    # A large account is written as it is read: the file grows chunk by chunk.
    async for chunk in export.document(conn, account_id, datetime.now(UTC)):
        out.write(chunk)
    out.flush()
    return 0


async def erase(settings: Settings, conn: Conn, account_id: str) -> int:
    from notifyd.storage import erasure

    def progress(step: str, rows: int) -> None:
        print(f"{step}: {rows}", file=sys.stderr, flush=True)

    erased = await erasure.erase(
        conn,
        account_id,
        erasure.erasure_key(settings.privacy.erasure_key, settings.daemon.state_dir),
        requested_by="cli",
        settings=settings,
        progress=progress,
    )
    if erased is None:
        return _unknown(account_id)
    before = " (it had been erased before; what came since is erased too)"
    print(
        f"account {account_id!r} erased{before if erased.already_erased else ''}: "
        f"{sum(erased.rows.values())} rows, {erased.kept_notices} billing notices kept "
        "for accounting, stripped"
    )
    return 0


async def restriction(settings: Settings, conn: Conn, action: str, account_id: str) -> int:
    """Restrict or lift one account; prints what it did."""
    from notifyd.intake import restriction

    if action == "restrict":
        done = await restriction.restrict(conn, account_id)
    else:
        done = await restriction.lift(conn, account_id, settings.delivery)
    if done is None:
        return _unknown(account_id)
    if done.restricted_at is not None:
        print(f"restricted since {done.restricted_at.isoformat()}; notices held now: {done.held}")
    else:
        print(f"not restricted; notices released: {done.released}, cancelled: {done.cancelled}")
    return 0
