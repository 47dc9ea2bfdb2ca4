"""What a command does when its reader goes away: `notifyd preview … | head` (cli.py) and
`notifyd privacy export ACCOUNT_ID | head` (privacy_cli.py) end quietly with the status a
shell reports for a tool killed by SIGPIPE, not with a BrokenPipeError traceback."""

from __future__ import annotations

import os
import sys

# What a shell reports for a command killed by SIGPIPE (128 + 13), as `cat big | head` does:
# under `set -o pipefail` a closed pipe shows as such, not as a complete success.
EXIT_PIPE_CLOSED = 141


def reader_went_away() -> int:
    """After a BrokenPipeError on stdout: point stdout at /dev/null, or Python's own flush at
    exit raises the same error again as a traceback; return EXIT_PIPE_CLOSED."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE_CLOSED
