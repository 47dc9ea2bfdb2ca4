"""Mail streams and the From name in the subscriber's language (issue 20): what
[smtp.streams.marketing] and [smtp] sender_names mean, and the From and X-Notifyd-Stream
headers as a mail reader parses them back."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifyd.mail.addresses import Origin
from notifyd.mail.rendering import Renderer
from notifyd.settings import MARKETING, TRANSACTIONAL, ConfigError, from_mapping
from tests.unit.rendering_support import NOW, notice

SENDER = "Notificări <notificari@voip.example>"
NAMES = {"ro": "Notificări Exemplu", "en": "Example Notifications"}


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_header(data: bytes, name: str) -> bytes:
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    return next(line for line in head.split(b"\r\n") if line.startswith(name.encode() + b":"))


@pytest.mark.parametrize(
    ("language", "display"),
    [("en", "Example Notifications"), ("ro", "Notificări Exemplu")],
)
def test_the_from_name_is_in_the_notices_language_and_encoded_as_rfc_2047(
    language: str, display: str
) -> None:
    data = Renderer(SENDER, sender_names=NAMES).mail(notice("account.created", language), NOW)
    sender = parsed(data)["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (display, "notificari@voip.example")
    line = raw_header(data, "From")
    assert line.isascii()
    # Non-ASCII only as an encoded word, never raw UTF-8 (RFC 2047).
    assert (b"=?utf-8?" in line) == (not display.isascii())


def test_a_language_without_a_name_keeps_the_senders_own() -> None:
    data = Renderer(SENDER, sender_names={"ro": "Notificări Exemplu"}).mail(
        notice("account.created", "en"), NOW
    )
    assert parsed(data)["From"].addresses[0].display_name == "Notificări"


def test_a_streams_origin_and_name_are_in_its_headers() -> None:
    origin = Origin.of("Oferte <oferte@news.voip.example>", {"en": "Example Offers"})
    data = Renderer(SENDER, sender_names=NAMES).mail(
        notice("account.created", "en"), NOW, origin=origin, stream=MARKETING
    )
    message = parsed(data)
    assert message["X-Notifyd-Stream"] == "marketing"
    assert str(message["From"]) == "Example Offers <oferte@news.voip.example>"


def test_a_stream_takes_smtps_keys_it_leaves_out() -> None:
    loaded = from_mapping(
        {
            "smtp": {
                "host": "relay.example",
                "username": "u",
                "password": "p",
                "sender": SENDER,
                "sender_names": NAMES,
                "bounce_domain": "Bounces.VoIP.example",
                "streams": {
                    "marketing": {"sender": "Oferte <o@news.example>", "bounce_domain": "b.news"}
                },
            }
        },
        Path("/etc/notifyd/notifyd.toml"),
        {},
    )
    smtp = loaded.smtp
    assert smtp.stream(TRANSACTIONAL) is smtp
    marketing = smtp.stream(MARKETING)
    assert (marketing.host, marketing.username, marketing.password) == ("relay.example", "u", "p")
    assert (marketing.sender, marketing.bounce_domain) == ("Oferte <o@news.example>", "b.news")
    # Its own sender, no names of its own: the sender's name, not [smtp]'s Romanian one.
    assert marketing.sender_names == {}
    assert marketing.relay == smtp.relay  # one pool for both
    assert smtp.bounce_domains == ("bounces.voip.example", "b.news")


def test_offers_are_marketing_and_policy_changes_only_when_configured() -> None:
    plain = from_mapping({}, Path("/etc/notifyd/notifyd.toml"), {}).smtp
    assert plain.stream_of("marketing", "marketing.offer") == MARKETING
    assert plain.stream_of("service", "notice.policy_changed") == TRANSACTIONAL
    assert plain.stream(MARKETING) is plain
    routed = from_mapping(
        {"smtp": {"streams": {"marketing": {"policy_changes": True}}}},
        Path("/etc/notifyd/notifyd.toml"),
        {},
    ).smtp
    assert routed.stream_of("service", "notice.policy_changed") == MARKETING
    assert routed.stream_of("service", "notice.service") == TRANSACTIONAL


@pytest.mark.parametrize(
    ("smtp", "key", "words"),
    [
        ({"streams": {"bulk": {}}}, "[smtp] streams", "only [smtp.streams.marketing]"),
        ({"sender_names": {"de": "Hallo"}}, "[smtp] sender_names", "not a language"),
        ({"sender_names": {"en": "A <b@c>"}}, "[smtp] sender_names", "one line without"),
        (
            {"streams": {"marketing": {"username": "u"}}},
            "[smtp.streams.marketing] password",
            "username is set",
        ),
        (
            {"streams": {"marketing": {"bounce_domain": "not a domain"}}},
            "[smtp.streams.marketing] bounce_domain",
            "not a domain",
        ),
    ],
)
def test_a_wrong_stream_or_name_is_a_problem_naming_its_key(
    smtp: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping({"smtp": smtp}, Path("/etc/notifyd/notifyd.toml"), {})
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert words in problems[key]
