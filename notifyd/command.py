"""The `notifyd` executable: `notifyd send` goes to send_cli.py before anything of the
daemon is imported (a PBX runs it once per call: it must start in tens of milliseconds, not
the third of a second that aiohttp, asyncpg, pydantic and the rest take); every other
command goes to cli.py."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["send"]:
        from notifyd import send_cli

        return send_cli.main(args[1:])
    from notifyd import cli

    return cli.main(args)
