"""`notifyd migrate` and `notifyd migrate --check`: the schema for deploy scripts.

cli.py parses the command line and hands the loaded settings here; the migrations
themselves and where a database stands are storage/schema.py's. docs/operations.md,
"Upgrades and backups", tells the exit codes and the order of an upgrade.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from notifyd import __version__
from notifyd.settings import Settings

if TYPE_CHECKING:
    from notifyd.storage.schema import Standing

# Distinct from 1 (a crash) and 69/78 (no database, a bad config), so that a deploy script
# can tell "run migrate first" from "this binary is older than the database".
EXIT_PENDING = 3
EXIT_AHEAD = 4
EXIT_UNAVAILABLE = 69  # as `run`: sysexits.h EX_UNAVAILABLE
CHECK_PATIENCE_SECONDS = 5.0
MIGRATE_PATIENCE_SECONDS = 30.0


async def migrate(settings: Settings, *, check: bool) -> int:
    from notifyd.logs import configure

    configure(settings.logging.level, settings.logging.format, stream=sys.stderr)
    return await one_line_when_unreachable("", _migrate(settings, check=check))


async def one_line_when_unreachable(command: str, work: Coroutine[Any, Any, int]) -> int:
    """`work`'s exit code, or EXIT_UNAVAILABLE with one line on stderr when the database
    cannot be reached: a deploy script or an operator's shell shows it as it is, not as a
    traceback. `command` ("notifyd privacy: ") begins the line."""
    from notifyd.storage import db

    try:
        return await work
    except db.DatabaseTLSError as error:  # reachable, but not the server the URL trusts
        print(f"{command or 'notifyd migrate: '}{error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except db.UNAVAILABLE as error:
        print(f"{command}database unreachable ({type(error).__name__}): {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


async def _migrate(settings: Settings, *, check: bool) -> int:
    from notifyd.storage import db, schema

    # A deploy script asking waits less for a database still starting than a migration.
    patience = CHECK_PATIENCE_SECONDS if check else MIGRATE_PATIENCE_SECONDS
    async with (
        db.open_database(settings.database, settings.pgdata_dir, patience=patience) as database,
        database.pool.acquire() as conn,
    ):
        if check:
            return _report(await schema.standing(conn))
        applied = await schema.migrate(conn)
        standing = await schema.standing(conn)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none"
    print(f"schema at version {standing.version}; applied now: {names}")
    if standing.unknown:
        # Not an error: this host runs on a newer schema (expand first), but say so.
        print(_ahead_line(standing), file=sys.stderr)
    return 0


def _report(standing: Standing) -> int:
    """One line on stdout (current) or stderr (not), and the exit code a script acts on."""
    if standing.unknown:
        print(_ahead_line(standing), file=sys.stderr)
        return EXIT_AHEAD
    if standing.pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in standing.pending)
        print(
            f"schema at version {standing.version}, behind notifyd {__version__}: pending {names}",
            file=sys.stderr,
        )
        return EXIT_PENDING
    print(f"schema at version {standing.version}: current")
    return 0


def _ahead_line(standing: Standing) -> str:
    from notifyd.storage import schema

    return (
        f"schema at version {standing.version}, ahead of notifyd {__version__} "
        f"(which knows up to {schema.latest_version()}): a newer notifyd applied "
        f"{', '.join(standing.unknown)}"
    )
