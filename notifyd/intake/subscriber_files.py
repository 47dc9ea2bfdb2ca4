"""Subscriber import files, CSV with a header line or JSON lines, read in bounded time and memory.

Synchronous and free of I/O: it reads an iterable of byte chunks, so `notifyd.http.admin.imports`
runs it in a thread while the event loop feeds it the request body. A record is handed on as
soon as its last line arrives, with the physical line numbers it came from, so that every
line that does not become a row can be named in the answer.

What cannot be read past is raised as `BadFile` (which line, and why): bytes that are not
UTF-8, a line or record over `MAX_LINE_BYTES`, a quote never closed, a header that does not
name the columns. A record that can be read but is not a row (wrong number of fields, text
after a closing quote) is handed on with its problem, and reading goes on.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Far above any real subscriber row (an address is at most 254 characters), small enough that
# a file gone wrong is refused after a few KiB instead of being held and parsed whole.
MAX_LINE_BYTES = 16 * 1024
_LIMIT_TEXT = "16 KiB"

_LINE_END = re.compile(rb"\r\n?|\n")
_BOM = b"\xef\xbb\xbf"
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


class BadFile(Exception):
    """The file cannot be read from `line` on; nothing from that line was imported."""

    def __init__(self, line: int, reason: str, *, header: bool = False) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
        # A header that names no usable columns, not bytes that cannot be read.
        self.header = header


@dataclass(frozen=True)
class Record:
    """One row of the file (`values`), or why its lines are not one (`problem`)."""

    line: int
    last_line: int
    values: dict[str, Any] | None = None
    problem: str | None = None


class _Lines:
    """The body's lines as text with their line ends (LF, CRLF or a lone CR), numbered.

    The line ends are kept because the csv module needs them to put a line break into a
    quoted field. `begin_record()` starts counting the bytes of a record: the csv module pulls
    line after line while a quote is open, and this is what stops it.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._raw = self._split(chunks)
        self.number = 0  # of the last line handed out
        self.ended = False
        self._record_start = 1
        self._record_bytes = 0

    def begin_record(self) -> None:
        self._record_start = self.number + 1
        self._record_bytes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._raw)
        except StopIteration:
            self.ended = True
            raise
        self.number += 1
        self._record_bytes += len(raw)
        if self._record_bytes > MAX_LINE_BYTES and self.number > self._record_start:
            raise BadFile(
                self._record_start,
                f"a quoted field begins on this line and is not closed within {_LIMIT_TEXT}"
                " (the longest a row may be); is its closing quote missing?",
            )
        if self.number == 1:
            raw = raw.removeprefix(_BOM)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            hint = "; save the file as UTF-8" if self.number == 1 else ""
            raise BadFile(
                self.number, f"not valid UTF-8 (byte {error.start + 1} of the line){hint}"
            ) from None

    def _split(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        pending = b""
        number = 0
        for chunk in chunks:
            data = pending + chunk if pending else chunk
            start = 0
            for match in _LINE_END.finditer(data):
                if match.end() == len(data) and match.group() == b"\r":
                    break  # the CR of a CRLF whose LF is in the next chunk
                number += 1
                if match.start() - start > MAX_LINE_BYTES:
                    raise BadFile(number, f"the line is longer than {_LIMIT_TEXT}")
                yield data[start : match.end()]
                start = match.end()
            pending = data[start:]
            # Refused before its end arrives: a line without one is never held whole.
            if len(pending) > MAX_LINE_BYTES + 1:
                raise BadFile(number + 1, f"the line is longer than {_LIMIT_TEXT}")
        if len(pending) > MAX_LINE_BYTES:
            raise BadFile(number + 1, f"the line is longer than {_LIMIT_TEXT}")
        if pending:
            yield pending


def csv_records(chunks: Iterable[bytes], columns: Collection[str]) -> Iterator[Record]:
    """The records of a CSV file whose first line that is not blank names its `columns`.

    Blank lines and lines of empty fields (what spreadsheets write below a table) are no
    rows and are skipped. A quote inside an unquoted field is part of it, as spreadsheets
    read it; text after a closing quote makes that record a problem, not the next ones.
    """
    lines = _Lines(chunks)
    # strict: text after a closing quote, and the end of the file inside a quoted field,
    # are errors instead of being glued on in silence.
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    while True:
        lines.begin_record()
        first = lines.number + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:
            if lines.ended:
                raise BadFile(
                    first, "a quoted field begins on this line and is never closed"
                ) from None
            yield Record(first, lines.number, problem=_quote_problem(first, lines.number))
            continue
        if not any(cell.strip() for cell in fields):
            continue
        if header is None:
            header = _header(first, fields, columns)
            continue
        yield _csv_record(first, lines.number, header, fields)
    if header is None:
        raise BadFile(1, _no_header(columns), header=True)


def _quote_problem(first: int, last: int) -> str:
    where = (
        f"the quoted field opened on line {first} closes on line {last}, and "
        if (last > first)
        else ""
    )
    return (
        f"{where}text follows a closing quote: a quoted field must end at its quote, and a"
        ' quote inside it is written twice ("")'
    )


def _no_header(columns: Collection[str]) -> str:
    return (
        f"the file has no header line; the first line must name the columns ({', '.join(columns)})"
    )


def _header(line: int, fields: list[str], columns: Collection[str]) -> list[str]:
    names = [cell.strip().lower() for cell in fields]
    problems: list[str] = []
    for position, name in enumerate(names, start=1):
        if not name:
            problems.append(f"column {position} has no name")
        elif name not in columns:
            problems.append(f"unknown column {name!r}")
        elif names.index(name) < position - 1:
            problems.append(f"column {name!r} appears twice")
    required = [c for c in ("account_id", "email") if c not in names]
    if required:
        problems.append("no column " + " or ".join(repr(c) for c in required))
    if problems:
        raise BadFile(
            line,
            _separator_hint(names, columns)
            + "; ".join(problems)
            + f" (the columns are: {', '.join(columns)})",
            header=True,
        )
    return names


def _separator_hint(names: list[str], columns: Collection[str]) -> str:
    """What to do when the header is one cell that another separator would split into known
    columns: a spreadsheet in a language whose decimal mark is the comma (Romanian) saves
    "CSV" with semicolons, and "text" with tabs."""
    if len(names) != 1:
        return ""
    for separator, said in ((";", "';'"), ("\t", "a tab")):
        cells = [cell.strip() for cell in names[0].split(separator)]
        if len(cells) > 1 and {"account_id", "email"} <= set(cells) <= set(columns):
            return f"the columns are separated by {said}: save the file as CSV with commas; "
    return ""


def _csv_record(first: int, last: int, header: list[str], fields: list[str]) -> Record:
    if len(fields) != len(header):
        problem = f"has {len(fields)} columns, the header has {len(header)}"
        if last > first:
            problem += f" (a quoted field runs from line {first} to line {last})"
        return Record(first, last, problem=problem)
    values: dict[str, Any] = {k: v for k, v in zip(header, fields, strict=True) if v != ""}
    if "marketing" in values:
        values["marketing"] = _BOOLEANS.get(
            values["marketing"].strip().lower(), values["marketing"]
        )
    return Record(first, last, values=values)


def json_lines_records(chunks: Iterable[bytes]) -> Iterator[Record]:
    """The records of a JSON lines file: one object per line; blank lines are skipped."""
    lines = _Lines(chunks)
    while True:
        lines.begin_record()  # a record is one line here
        text = next(lines, None)
        if text is None:
            break
        if not text.strip():
            continue
        number = lines.number
        try:
            value = json.loads(text)
        except ValueError:
            yield Record(number, number, problem="is not valid JSON")
            continue
        if not isinstance(value, dict):
            yield Record(number, number, problem="must be a JSON object")
        else:
            yield Record(number, number, values=value)
