"""Signed links: the kept signer must sign exactly as itsdangerous's own `dumps` does, or
the links in emails already sent would stop working."""

from __future__ import annotations

from itsdangerous import URLSafeSerializer

from notifyd.links import Links, Unsubscribe

SECRET = "s3cret-for-tests"


def token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_links_are_signed_as_itsdangerous_signs_them() -> None:
    links = Links(SECRET, "https://notify.example/")
    preferences = URLSafeSerializer(SECRET, salt="notifyd.preferences")
    unsubscribe = URLSafeSerializer(SECRET, salt="notifyd.unsubscribe")
    for account in ("acc-1", "acc-ăîș", "x" * 200):
        url = links.preferences_url(account)
        assert url.startswith("https://notify.example/v1/preferences/")
        assert token(url) == preferences.dumps(account)
        assert links.read_preferences(token(url)) == account
    marketing = links.unsubscribe_url("acc-1", "ana@client.example")
    assert token(marketing) == unsubscribe.dumps(["acc-1", "ana@client.example"])
    digest = links.unsubscribe_url("acc-1", "ana@client.example", "calls")
    assert token(digest) == unsubscribe.dumps(["acc-1", "ana@client.example", "calls"])
    assert links.read_unsubscribe(token(digest)) == Unsubscribe(
        "acc-1", "ana@client.example", "calls"
    )


def test_a_link_signed_with_another_secret_or_salt_is_refused() -> None:
    links = Links(SECRET, "https://notify.example")
    other = Links("another-secret", "https://notify.example")
    assert links.read_preferences(token(other.preferences_url("acc-1"))) is None
    # A preference token is not an unsubscribe token: the salts differ.
    assert links.read_unsubscribe(token(links.preferences_url("acc-1"))) is None
