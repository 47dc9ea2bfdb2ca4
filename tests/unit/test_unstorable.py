"""unstorable: NUL characters and lone surrogates found and named by their path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyd import unstorable
from notifyd.catalogue.events import InvalidEvent, parse_event
from notifyd.catalogue.samples import sample_event

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


def paths(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path or "body"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in paths(v, f"{path}.{i}" if path else str(i))]
    return []


def spoil(value: Any, target: str, bad: str, path: str = "") -> Any:
    if isinstance(value, str):
        return value + bad if (path or "body") == target else value
    if isinstance(value, dict):
        return {k: spoil(v, target, bad, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [
            spoil(v, target, bad, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)
        ]
    return value


@given(value=JSON_VALUES, data=st.data(), bad=st.sampled_from(["\x00", "\udfff"]))
def test_a_bad_character_anywhere_is_found_at_its_path(value: Any, data: Any, bad: str) -> None:
    assert unstorable.found(value) == {}
    where = paths(value)
    if not where:
        return
    target = data.draw(st.sampled_from(where))

    found = unstorable.found(spoil(value, target, bad))

    assert list(found) == [target]
    assert found[target] == (unstorable.NUL if bad == "\x00" else unstorable.SURROGATE)


def test_a_bad_key_is_named_on_its_container() -> None:
    assert unstorable.found({"modes": {"ca\x00lls": "daily"}}) == {
        "modes": f"a key {unstorable.NUL}"
    }


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b'{"a": {"b": ["x", "\\ud800"]}}', {"a.b.1": unstorable.SURROGATE}),
        (b'{"a": "\\udcff\\ud800"}', {"a": unstorable.SURROGATE}),
        (b'{"a": "fine"', {}),  # not JSON at all: nothing to name
        (b"\xff", {}),
    ],
)
def test_a_body_refused_as_json_names_its_lone_surrogates(
    raw: bytes, found: dict[str, str]
) -> None:
    assert unstorable.in_refused_json(raw) == found


def test_a_webhook_with_a_lone_surrogate_names_the_field() -> None:
    body = json.dumps(sample_event("call.missed", "acc-1", caller_name="Ion\ud800")).encode()

    with pytest.raises(InvalidEvent) as caught:
        parse_event(body)

    assert caught.value.fields == {"data.caller_name": unstorable.SURROGATE}


def test_only_a_body_that_writes_a_nul_escape_may_hold_one() -> None:
    assert unstorable.may_hold_nul(json.dumps({"a": "x\x00"}).encode())
    assert not unstorable.may_hold_nul(json.dumps({"a": "x\x01\\u0001"}).encode())


def test_the_openapi_document_says_every_parameter_may_be_refused(tmp_path: Path) -> None:
    # Any path or query parameter holding a NUL is answered 422 (a middleware, for every
    # route): the contract says so wherever an operation takes a parameter.
    from notifyd.http.openapi import document
    from tests.conftest import app_without_services

    undocumented = []
    for path, item in document(app_without_services(tmp_path))["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = item.get("parameters", []) + operation.get("parameters", [])
            takes_parameters = any(p["in"] in ("path", "query") for p in parameters)
            if takes_parameters and "422" not in operation["responses"]:
                undocumented.append(f"{method.upper()} {path}")
    assert undocumented == []
