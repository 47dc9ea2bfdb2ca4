"""layout.html, the frame of every HTML email: [branding]'s name or logo on top, the support
contact and legal links in the footer only when set, the notice's links as words (once each),
in the configured colours. How it looks on a phone is tests/integration/test_phone_mail.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from notifyd.catalogue.locale import LANGUAGES
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import Renderer
from notifyd.settings.branding import BrandingSettings

SENDER = "Operator VoIP <notificari@voip.example>"
NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
BRANDING = BrandingSettings(
    company_name="Exemplu Telecom",
    logo_url="https://www.voip.example/logo.png",
    primary_colour="#7a1f5c",
    support_email="suport@voip.example",
    support_phone="+40 21 000 0000",
    support_url="https://www.voip.example/suport",
    privacy_url="https://www.voip.example/confidentialitate",
    terms_url="https://www.voip.example/termeni",
)
UNSUBSCRIBE = {"ro": "Dezabonare", "en": "Unsubscribe"}


class Links(HTMLParser):
    """The HTML's links as (href, text) and its images' attributes."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.images: list[dict[str, str | None]] = []
        self._open: tuple[str, list[str]] | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "a":
            self._open = (dict(attrs).get("href") or "", [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open[0], "".join(self._open[1]).strip()))
            self._open = None


def html(kind: str, language: str, branding: BrandingSettings | None = None) -> str:
    company = branding.company_name if branding else ""
    renderer = Renderer(SENDER, branding=branding, company=company)
    return renderer.render(sample_view(kind, language, NOW)).html


@pytest.mark.parametrize("language", LANGUAGES)
def test_branded_email_shows_the_logo_support_contact_and_legal_links(language: str) -> None:
    markup = html("call.missed", language, BRANDING)
    parsed = Links(markup)

    assert parsed.images == [
        {
            "src": BRANDING.logo_url,
            "alt": "Exemplu Telecom",
            "height": "40",
            "style": parsed.images[0]["style"],
        }
    ]
    assert ("mailto:suport@voip.example", "suport@voip.example") in parsed.links
    assert ("tel:+40210000000", "+40 21 000 0000") in parsed.links
    help_word = {"ro": "Ajutor", "en": "Help"}[language]
    assert (BRANDING.support_url, help_word) in parsed.links
    legal = {"ro": ("Confidențialitate", "Termeni"), "en": ("Privacy", "Terms")}[language]
    assert (BRANDING.privacy_url, legal[0]) in parsed.links
    assert (BRANDING.terms_url, legal[1]) in parsed.links
    assert "color:#7a1f5c" in markup
    assert "#0b5cad" not in markup


@pytest.mark.parametrize("language", LANGUAGES)
def test_without_branding_the_sender_name_heads_it_and_no_empty_contact_shows(
    language: str,
) -> None:
    markup = html("call.missed", language)
    parsed = Links(markup)

    assert parsed.images == []
    assert "Operator VoIP" in markup
    assert {"ro": "Suport", "en": "Support"}[language] not in markup
    # The preference page and the one-click link that turns missed-call emails off.
    context = sample_view("call.missed", language, NOW).context
    assert [href for href, _ in parsed.links] == [
        context["preferences_url"],
        context["unsubscribe_url"],
    ]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["marketing.offer", "digest", "call.missed"])
def test_an_unsubscribe_link_shows_once_as_a_word(kind: str, language: str) -> None:
    url = "https://notices.voip.example/v1/unsubscribe/" + "x" * 160
    notice = sample_view(kind, language, NOW)
    notice = dataclasses.replace(notice, context={**notice.context, "unsubscribe_url": url})

    markup = Renderer(SENDER).render(notice).html

    assert [link for link in Links(markup).links if link[0] == url] == [
        (url, UNSUBSCRIBE[language])
    ]
    assert markup.count(url) == 1
