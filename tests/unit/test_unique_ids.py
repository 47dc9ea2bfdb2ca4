"""The ids made for requests that came without one and for MIME boundaries (unique_ids.py)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from notifyd import unique_ids
from notifyd.logs import mask
from notifyd.unique_ids import new_id


def test_ids_are_distinct_32_hex_characters_that_the_masking_leaves_as_they_are() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in ids)
    assert all(mask(one) == one for one in ids)


def test_a_prefix_of_digits_alone_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id of digits only would be logged masked as a phone number."""
    draws = iter(["1234567890123456", "12345678901234ab"])

    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(draws))
    assert unique_ids._new_prefix() == "12345678901234ab"


def test_each_process_and_each_forked_child_has_its_own_prefix() -> None:
    code = "from notifyd.unique_ids import new_id; print(new_id())"
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout[:16] != runs[1].stdout[:16]
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only writes its id and leaves
        os.write(writer, new_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader) as pipe:
        assert pipe.read()[:16] != new_id()[:16]
