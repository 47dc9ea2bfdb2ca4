"""Standard Webhooks verification: signed by the reference library, checked by ours."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from notifyd.http.signatures import SignatureError, SignedHeaders, Verifier, read_headers

SECRET = "whsec_" + base64.b64encode(b"pbx-unit-secret-0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"pbx-old-secret-0123456789abcdefg").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-0123456789abcdefghi").decode()
NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
MSG_ID = "msg_2b1c9f0e"
BODY = '{"type": "call.missed", "timestamp": "2026-11-22T10:00:00Z", "data": {}}'


def signature(
    secret: str = SECRET, body: str = BODY, at: datetime = NOW, msg_id: str = MSG_ID
) -> str:
    return Webhook(secret).sign(msg_id, at, body)


def headers(
    secret: str = SECRET, body: str = BODY, at: datetime = NOW, msg_id: str = MSG_ID
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secret, body, at, msg_id),
    }


def verify(
    given: dict[str, str],
    body: str = BODY,
    secrets: tuple[str, ...] = (SECRET,),
    tolerance: int = 300,
    now: datetime = NOW,
) -> None:
    Verifier(list(secrets), tolerance).verify(read_headers(given), body, now)


# -- valid signatures --------------------------------------------------------------------------


def test_valid_signature_passes() -> None:
    verify(headers())


def test_read_headers_returns_id_timestamp_and_decoded_signature() -> None:
    signed = read_headers(headers())

    assert signed == SignedHeaders(
        webhook_id=MSG_ID,
        timestamp=int(NOW.timestamp()),
        signatures=(base64.b64decode(signature().partition(",")[2]),),
    )
    assert len(signed.signatures[0]) == 32  # HMAC-SHA256


def test_any_secret_of_the_source_is_accepted_during_rotation() -> None:
    rotating = (OLD_SECRET, SECRET)

    verify(headers(secret=OLD_SECRET), secrets=rotating)
    verify(headers(secret=SECRET), secrets=rotating)


@pytest.mark.parametrize("matching_first", [True, False])
def test_one_matching_signature_among_several_passes(matching_first: bool) -> None:
    given = headers()
    good, bad = given["webhook-signature"], signature(secret=OTHER_SECRET)
    given["webhook-signature"] = f"{good} {bad}" if matching_first else f"{bad} {good}"

    verify(given)


def test_garbage_base64_signature_is_ignored_when_another_matches() -> None:
    given = headers()
    given["webhook-signature"] = "v1,@@not-base64@@ " + given["webhook-signature"]

    verify(given)


def test_non_v1_signatures_are_skipped_when_a_v1_matches() -> None:
    given = headers()
    given["webhook-signature"] = "v1a,c29tZXRoaW5n " + given["webhook-signature"]

    verify(given)


# -- refused signatures ------------------------------------------------------------------------


def test_tampered_body_fails() -> None:
    given = headers()

    with pytest.raises(SignatureError, match="no signature matches a secret of this source"):
        verify(given, body=BODY.replace("call.missed", "call.answered"))


def test_signature_by_another_secret_fails() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers(secret=OTHER_SECRET))


def test_retired_secret_fails_once_removed_from_the_source() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers(secret=OLD_SECRET), secrets=(SECRET,))


def test_changed_webhook_id_fails() -> None:
    given = headers()
    given["webhook-id"] = "msg_other"

    with pytest.raises(SignatureError, match="no signature matches"):
        verify(given)


def test_changed_timestamp_fails_even_within_tolerance() -> None:
    given = headers()
    given["webhook-timestamp"] = str(int(NOW.timestamp()) + 1)

    with pytest.raises(SignatureError, match="no signature matches"):
        verify(given)


# -- timestamp tolerance -----------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_timestamp_beyond_tolerance_fails(offset: int) -> None:
    sent_at = NOW + timedelta(seconds=offset)

    with pytest.raises(SignatureError, match=rf"is {abs(offset)} s from now; at most 300 s"):
        verify(headers(at=sent_at))


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamp_within_tolerance_passes(offset: int) -> None:
    verify(headers(at=NOW + timedelta(seconds=offset)))


def test_tolerance_is_configurable() -> None:
    stale = headers(at=NOW - timedelta(seconds=400))

    verify(stale, tolerance=600)
    with pytest.raises(SignatureError, match="at most 300 s allowed"):
        verify(stale, tolerance=300)


def test_stale_timestamp_is_refused_before_any_signature_check() -> None:
    given = headers(secret=OTHER_SECRET, at=NOW - timedelta(seconds=1000))

    with pytest.raises(SignatureError, match="1000 s from now"):
        verify(given)


# -- malformed headers -------------------------------------------------------------------------


def test_missing_headers_are_all_named() -> None:
    with pytest.raises(SignatureError) as caught:
        read_headers({})

    assert str(caught.value) == "missing header: webhook-id, webhook-timestamp, webhook-signature"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_one_missing_header_is_named(name: str) -> None:
    given = headers()
    del given[name]

    with pytest.raises(SignatureError) as caught:
        read_headers(given)

    assert str(caught.value) == f"missing header: {name}"


def test_empty_header_counts_as_missing() -> None:
    given = headers()
    given["webhook-signature"] = ""

    with pytest.raises(SignatureError, match=r"^missing header: webhook-signature$"):
        read_headers(given)


@pytest.mark.parametrize("value", ["abc", "1763800000.5", "-1763800000", "+1763800000", " 17"])
def test_non_digit_timestamp_is_refused(value: str) -> None:
    given = headers()
    given["webhook-timestamp"] = value

    with pytest.raises(SignatureError, match="webhook-timestamp must be Unix seconds"):
        read_headers(given)


@pytest.mark.parametrize("value", ["\u00b2", "1" * 5000])
def test_timestamp_that_int_cannot_parse_is_refused_as_a_signature_error(value: str) -> None:
    given = headers()
    given["webhook-timestamp"] = value

    with pytest.raises(SignatureError, match="webhook-timestamp must be Unix seconds"):
        read_headers(given)


def test_header_with_only_non_v1_signatures_is_refused() -> None:
    given = headers()
    given["webhook-signature"] = "v1a,c29tZXRoaW5n v2," + given["webhook-signature"][3:]

    with pytest.raises(SignatureError, match="webhook-signature has no v1 signature"):
        read_headers(given)


def test_header_with_only_garbage_base64_is_refused() -> None:
    given = headers()
    given["webhook-signature"] = "v1,@@@ v1,not%base64"

    with pytest.raises(SignatureError, match="webhook-signature has no v1 signature"):
        read_headers(given)


@pytest.mark.parametrize("webhook_id", ["x" * 257, "msg\nid", "msg\x00id"])
def test_overlong_or_unprintable_webhook_id_is_refused(webhook_id: str) -> None:
    given = headers()
    given["webhook-id"] = webhook_id

    with pytest.raises(SignatureError, match="webhook-id must be printable"):
        read_headers(given)


# -- bodies of bytes (bounce reports) ----------------------------------------------------------


def test_a_body_of_bytes_verifies_as_the_library_signs_its_text() -> None:
    given = read_headers(headers(OTHER_SECRET, body=BODY + " ț"))
    verifier = Verifier([SECRET, OTHER_SECRET], 300)
    verifier.verify_bytes(given, (BODY + " ț").encode(), NOW)
    with pytest.raises(SignatureError):
        verifier.verify_bytes(given, (BODY + " ţ").encode(), NOW)
    with pytest.raises(SignatureError, match="300 s allowed"):
        verifier.verify_bytes(given, (BODY + " ț").encode(), NOW + timedelta(hours=1))
