"""Shares of a py-spy raw profile (`py-spy record --format raw`, as NOTIFYD_BENCH_PROFILE
writes them from bench/harness.py): where a process's samples went, two ways.

- By part: each sample goes to the innermost frame that belongs to a known part (notifyd's
  folders, the libraries it runs on), so json.dumps called by the log line counts as the
  log line, and asyncpg's socket write as asyncpg.
- By notifyd function, inclusive: the share of samples with that function on the stack.

    .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (part, pattern on a frame's "function (file:line)"), tried from the innermost frame out.
PARTS = (
    ("logs (structlog, notifyd/logs.py)", r"structlog/|notifyd/logs\.py"),
    (
        "validation (pydantic, phonenumbers, catalogue/)",
        r"pydantic|phonenumbers/|notifyd/catalogue/",
    ),
    ("DKIM (mail/dkim.py, cryptography)", r"cryptography/|notifyd/mail/dkim"),
    (
        "SMTP (mail/pipelined.py, transport.py, aiosmtplib)",
        r"aiosmtplib/|mail/pipelined|mail/transport",
    ),
    (
        "rendering (jinja2, markupsafe, mail/)",
        r"jinja2/|markupsafe/|notifyd/mail/|notifyd/templates/",
    ),
    ("asyncpg (protocol, pool)", r"asyncpg/"),
    ("intake and group commit (intake/, storage/)", r"notifyd/intake/|notifyd/storage/"),
    ("rules (rules/)", r"notifyd/rules/"),
    ("delivery (delivery/)", r"notifyd/delivery/"),
    ("HTTP handlers and middlewares (http/)", r"notifyd/http/"),
    ("metrics (prometheus_client, metrics.py)", r"prometheus_client/|notifyd/metrics\.py"),
    ("aiohttp", r"aiohttp/|multidict/|yarl/"),
    ("event loop (uvloop, asyncio)", r"uvloop|asyncio/"),
    ("other notifyd", r"notifyd/"),
)
COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]
LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
FUNCTION = re.compile(r"^(?P<name>.+?) \((?P<file>[^:]+):\d+\)$")


def read(path: Path) -> list[tuple[list[str], int]]:
    """(frames from the outermost in, count) for each stack of the profile."""
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := LINE.match(line):
            samples.append((match["stack"].split(";"), int(match["count"])))
    return samples


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return "other (interpreter, stdlib at the top)"


def notifyd_function(frame: str) -> str | None:
    match = FUNCTION.match(frame)
    if not match or "notifyd/" not in match["file"]:
        return None
    return f"{match['name']} ({match['file'].split('notifyd/', 1)[1]})"


def main(path: Path, top: int) -> None:
    samples = read(path)
    total = sum(count for _, count in samples) or 1
    parts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in samples:
        parts[part_of(frames)] += count
        for name in {f for f in map(notifyd_function, frames) if f}:
            inclusive[name] += count
    print(f"{path.name}: {total:,} samples")
    print("\nby part (innermost known frame):")
    for name, count in parts.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print(f"\nnotifyd functions on the stack (inclusive, top {top}):")
    for name, count in inclusive.most_common(top):
        print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    main(args.profile, args.top)
