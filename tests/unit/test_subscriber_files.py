"""Import files read from chunks as they arrive: the same records however the body is cut,
and a file gone wrong refused before it is held whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyd.intake.subscriber_files import (
    MAX_LINE_BYTES,
    BadFile,
    Record,
    csv_records,
    json_lines_records,
)

COLUMNS = ("account_id", "email", "name")

FILE = (
    "\ufeffaccount_id,email,name\r\n"
    "acc-1,ana@client.example,Ana\r\n"
    'acc-2,ion@client.example,"Ion\r\nPopescu"\r'
    "acc-3,maria@client.example,Mărioară Ștefănescu\n"
    'acc-4,"dan@client.example"x,Dan\n'
    "acc-5,eva@client.example,Eva"
).encode()


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


def summary(records: list[Record]) -> list[tuple[int, int, object]]:
    return [(r.line, r.last_line, r.values or r.problem) for r in records]


def test_a_csv_file_gives_each_record_with_its_lines() -> None:
    records = summary(list(csv_records([FILE], COLUMNS)))
    assert [(line, last) for line, last, _ in records] == [(2, 2), (3, 4), (5, 5), (6, 6), (7, 7)]
    assert records[1][2] == {
        "account_id": "acc-2",
        "email": "ion@client.example",
        "name": "Ion\r\nPopescu",
    }
    assert "closing quote" in str(records[3][2])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=12))
def test_a_csv_file_cut_anywhere_gives_the_same_records(cuts: list[int]) -> None:
    expected = summary(list(csv_records([FILE], COLUMNS)))
    assert summary(list(csv_records(cut(FILE, cuts), COLUMNS))) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=8))
def test_json_lines_cut_anywhere_give_the_same_records(cuts: list[int]) -> None:
    body = '{"account_id": "acc-1", "name": "Ștefan"}\r\n\r\n[1]\r{"a": "\\u0000"}\nnope'.encode()
    assert summary(list(json_lines_records(cut(body, cuts)))) == [
        (1, 1, {"account_id": "acc-1", "name": "Ștefan"}),
        (3, 3, "must be a JSON object"),
        (4, 4, {"a": "\x00"}),  # the import names the field (notifyd.unstorable)
        (5, 5, "is not valid JSON"),
    ]


def endless(first: bytes, then: bytes, taken: list[int]) -> Iterator[bytes]:
    yield first
    while True:
        taken.append(len(then))
        yield then


def test_a_line_without_end_is_refused_before_it_is_held_whole() -> None:
    taken: list[int] = []
    with pytest.raises(BadFile) as refused:
        list(csv_records(endless(b"account_id,email\nacc-1,", b"x" * 1024, taken), COLUMNS))
    assert (refused.value.line, refused.value.header) == (2, False)
    assert sum(taken) <= MAX_LINE_BYTES + 1024


def test_a_quote_never_closed_is_refused_after_a_bounded_read() -> None:
    taken: list[int] = []
    lines = endless(b'account_id,email\nacc-1,a@b.example\nacc-2,"', b"acc-3,c@d.example\n", taken)
    with pytest.raises(BadFile) as refused:
        list(csv_records(lines, COLUMNS))
    assert refused.value.line == 3
    assert "quote" in refused.value.reason
    assert sum(taken) <= 2 * MAX_LINE_BYTES


def test_a_line_of_exactly_the_limit_is_read() -> None:
    name = b"x" * (MAX_LINE_BYTES - len(b"acc-1,a@b.example,"))
    body = b"account_id,email,name\r\nacc-1,a@b.example," + name + b"\r\n"
    [record] = list(csv_records([body], COLUMNS))
    assert record.values is not None
    assert record.values["name"] == name.decode()
    with pytest.raises(BadFile, match="line 2: the line is longer than 16 KiB"):
        list(csv_records([body[:-2] + b"x\r\n"], COLUMNS))
    with pytest.raises(BadFile, match="line 2: the line is longer than 16 KiB"):
        list(csv_records([body[:-2] + b"x"], COLUMNS))  # the last line, without its end
