"""Links in emails: tokens are opaque (no account id or address in any encoding), bound to
their page, carry when they were made, open with any configured key (rotation), and the
links already sent (itsdangerous, readable base64; sealed without a time) keep reading."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer

from notifyd.links import PREFERENCES, UNSUBSCRIBE, Links, PreferenceLink, Unsubscribe, _Sealer

SECRET = "s3cret-for-tests"
NOW = datetime(2026, 11, 22, 10, 5, 30, 123000, tzinfo=UTC)
ACCOUNTS = ("acc-1", "acc-ăîș", "x" * 200, "4000123")
ADDRESSES = ("ana@client.example", "ionuț@exemplu.ro", "a@b.example")


def token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def encodings(value: str) -> set[str]:
    """Every form of `value` a reader might try to find in a token, lower-cased: as is,
    URL-quoted, hex, and base64/base32 (standard and URL-safe) at each byte alignment,
    without the characters the neighbouring bytes would change."""
    raw = value.encode()
    found = {value, urllib.parse.quote(value), raw.hex(), binascii.hexlify(raw).decode()}
    for shift in range(3):
        padded = b"\0" * shift + raw
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(padded).decode().rstrip("=")
            # The first characters mix in the padding bytes, the last the missing ones.
            found.add(text[(shift * 4 + 2) // 3 : -2])
    for shift in range(5):
        text = base64.b32encode(b"\0" * shift + raw).decode().rstrip("=")
        found.add(text[(shift * 8 + 4) // 5 : -2])
    return {form.lower() for form in found if len(form) >= 4}


def test_tokens_carry_no_account_id_or_address_in_any_encoding() -> None:
    links = Links(SECRET, "https://notify.example/")
    for account in ACCOUNTS:
        for address in ADDRESSES:
            tokens = [
                token(links.preferences_url(account, issued=NOW)),
                token(links.unsubscribe_url(account, address, issued=NOW)),
                token(links.unsubscribe_url(account, address, "calls", issued=NOW)),
            ]
            for value in (account, address, address.split("@")[1]):
                for form in encodings(value):
                    for found in tokens:
                        assert form not in found.lower(), (value, form, found)


def test_the_encodings_checked_would_find_the_old_readable_tokens() -> None:
    # The check above is worth something only if it catches what the old links carried.
    old = URLSafeSerializer(SECRET, salt="notifyd.unsubscribe").dumps(
        ["acc-1", "ana@client.example"]
    )
    assert any(form in old.lower() for form in encodings("ana@client.example"))


def test_links_read_back_what_they_carry_and_when_they_were_made() -> None:
    links = Links(SECRET, "https://notify.example/")
    for account in ACCOUNTS:
        url = links.preferences_url(account, issued=NOW)
        assert url.startswith("https://notify.example/v1/preferences/")
        assert links.read_preferences(token(url)) == PreferenceLink(account, NOW)
    marketing = links.unsubscribe_url("acc-1", "ana@client.example", issued=NOW)
    assert marketing.startswith("https://notify.example/v1/unsubscribe/")
    assert links.read_unsubscribe(token(marketing)) == Unsubscribe(
        "acc-1", "ana@client.example", "marketing", NOW
    )
    digest = links.unsubscribe_url("acc-1", "ana@client.example", "calls", issued=NOW)
    assert links.read_unsubscribe(token(digest)) == Unsubscribe(
        "acc-1", "ana@client.example", "calls", NOW
    )
    # A notice's category-off link: the same items, sealed for its own page.
    off = links.category_off_url("acc-1", "ana@client.example", "calls", issued=NOW)
    assert off.startswith("https://notify.example/v1/unsubscribe/")
    assert off != digest
    assert links.read_unsubscribe(token(off)) == Unsubscribe(
        "acc-1", "ana@client.example", "calls", NOW, from_notice=True
    )
    assert links.read_preferences(token(off)) is None
    assert Links("another-secret", "https://notify.example").read_unsubscribe(token(off)) is None
    # Made a millisecond apart, two links differ: a revocation falls between them.
    later = links.preferences_url("acc-1", issued=NOW + timedelta(milliseconds=1))
    assert later != links.preferences_url("acc-1", issued=NOW)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, new = "old-key-of-last-year", "new-key-of-this-year"
    before = Links(old, "https://notify.example")
    rotated = Links([new, old], "https://notify.example")
    only_new = Links(new, "https://notify.example")
    sent_before = token(before.preferences_url("acc-1", issued=NOW))
    sent_after = token(rotated.preferences_url("acc-1", issued=NOW))
    unsubscribe_before = token(before.unsubscribe_url("acc-1", "a@b.example", issued=NOW))
    # A link sent under the old key opens after the rotation ...
    assert rotated.read_preferences(sent_before) == PreferenceLink("acc-1", NOW)
    assert rotated.read_unsubscribe(unsubscribe_before) == Unsubscribe(
        "acc-1", "a@b.example", "marketing", NOW
    )
    # ... and the new links are sealed with the new key: the old one alone cannot open them.
    assert only_new.read_preferences(sent_after) == PreferenceLink("acc-1", NOW)
    assert before.read_preferences(sent_after) is None
    # Once the old key is dropped, its links no longer open.
    assert only_new.read_preferences(sent_before) is None
    # A page shown before the rotation still posts after it.
    assert rotated.form_token_valid(sent_before, before.form_token(sent_before))
    assert rotated.form_token(sent_after) == only_new.form_token(sent_after)


def test_links_sealed_before_they_carried_a_time_still_read_with_no_time() -> None:
    sealer = _Sealer(SECRET)
    links = Links(["another-key-first", SECRET], "https://notify.example")
    preferences = sealer.seal(PREFERENCES, ["acc-1"])
    marketing = sealer.seal(UNSUBSCRIBE, ["acc-1", "a@b.example"])
    digest = sealer.seal(UNSUBSCRIBE, ["acc-1", "a@b.example", "calls"])
    assert links.read_preferences(preferences) == PreferenceLink("acc-1", None)
    assert links.read_unsubscribe(marketing) == Unsubscribe("acc-1", "a@b.example")
    assert links.read_unsubscribe(digest) == Unsubscribe("acc-1", "a@b.example", "calls")


def test_links_already_sent_in_the_old_signed_format_still_read() -> None:
    links = Links(SECRET, "https://notify.example")
    preferences = URLSafeSerializer(SECRET, salt="notifyd.rules.preferences")
    unsubscribe = URLSafeSerializer(SECRET, salt="notifyd.unsubscribe")
    assert links.read_preferences(preferences.dumps("acc-ăîș")) == PreferenceLink("acc-ăîș", None)
    assert links.read_unsubscribe(unsubscribe.dumps(["acc-1", "ana@client.example"])) == (
        Unsubscribe("acc-1", "ana@client.example")
    )
    assert links.read_unsubscribe(
        unsubscribe.dumps(["acc-1", "ana@client.example", "calls"])
    ) == Unsubscribe("acc-1", "ana@client.example", "calls")


def test_a_link_signed_with_another_secret_or_for_another_page_is_refused() -> None:
    links = Links(SECRET, "https://notify.example")
    other = Links("another-secret", "https://notify.example")
    assert links.read_preferences(token(other.preferences_url("acc-1", issued=NOW))) is None
    theirs = token(other.unsubscribe_url("acc-1", "a@b.example", issued=NOW))
    assert links.read_unsubscribe(theirs) is None
    # A preference token is not an unsubscribe token, nor the other way round.
    assert links.read_unsubscribe(token(links.preferences_url("acc-1", issued=NOW))) is None
    ours = token(links.unsubscribe_url("acc-1", "a@b.example", issued=NOW))
    assert links.read_preferences(ours) is None
    old = URLSafeSerializer("another-secret", salt="notifyd.rules.preferences").dumps("acc-1")
    assert links.read_preferences(old) is None


@pytest.mark.parametrize("position", [0, 5, -1])
def test_a_tampered_token_reads_as_nothing(position: int) -> None:
    links = Links(SECRET, "https://notify.example")
    for url in (
        links.preferences_url("acc-1", issued=NOW),
        links.unsubscribe_url("acc-1", "a@b.example", issued=NOW),
    ):
        original = token(url)
        swapped = "A" if original[position] != "A" else "B"
        index = position % len(original)
        tampered = original[:index] + swapped + original[index + 1 :]
        assert links.read_preferences(tampered) is None
        assert links.read_unsubscribe(tampered) is None
    for garbage in ("", "x", "!!!", "A" * 300, "a.b", "é"):
        assert links.read_preferences(garbage) is None
        assert links.read_unsubscribe(garbage) is None


def test_a_form_token_is_bound_to_its_link() -> None:
    links = Links(SECRET, "https://notify.example")
    first = token(links.preferences_url("acc-1", issued=NOW))
    second = token(links.preferences_url("acc-2", issued=NOW))
    form = links.form_token(first)
    assert links.form_token_valid(first, form)
    assert not links.form_token_valid(second, form)
    assert not links.form_token_valid(first, "")
    assert not links.form_token_valid(first, form[:-1])
    assert not Links("another-secret", "https://n.example").form_token_valid(first, form)
