"""[branding]: who the subscriber is dealing with, shared by the subscriber pages
(http/pages/) and every email (mail/rendering.py and the templates): the company's name, its
logo, its colours, how to reach its support, and its legal pages.

Nothing here makes a page or an email fetch from a third party: the logo is either an SVG
file inlined in the pages (no request at all) or an https URL on the operator's own site,
which the pages' Content-Security-Policy then allows by its origin alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from notifyd.settings.fields import Section, existing

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
# An inlined logo is part of every page: a file larger than this is a photo, not a logo.
LOGO_SVG_BYTES_AT_MOST = 64 * 1024


def colour(value: str) -> str:
    if not _COLOUR.fullmatch(value):
        raise ValueError(f'must be a colour written "#rrggbb", got {value!r}')
    return value.lower()


def https_url(value: str) -> str:
    """Empty, or an https URL: pages and emails link it, and an http link would leak the
    subscriber's visit to anyone on the path."""
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or any(c in value for c in " \r\n\"'<>"):
        raise ValueError(f"must be empty or an https URL, got {value!r}")
    return value


def support_address(value: str) -> str:
    if value and (value.count("@") != 1 or any(c in value for c in " \r\n<>,;\"'")):
        raise ValueError(f"must be one address such as support@example.com, got {value!r}")
    return value


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.1's relative luminance of a "#rrggbb" colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(first: str, second: str) -> float:
    """WCAG 2.1's contrast ratio, 1 to 21."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)))[::-1]
    return (lighter + 0.05) / (darker + 0.05)


# WCAG 2.1 AA for normal text: links and buttons are written in these colours.
AA_CONTRAST = 4.5


class BrandingSettings(Section):
    """Shown on the subscriber pages and in every email's header and footer. A support
    contact is worth setting: without one, emails can only say "contact us"."""

    company_name: str = Field(
        "",
        examples=["Exemplu Telecom"],
        description="The provider's name, in page titles, headers and footers. Empty: the "
        "display name of [smtp] sender.",
    )
    logo_svg_file: Annotated[Path | None, BeforeValidator(existing("file"))] = Field(
        None,
        description="An SVG logo inlined in the pages (no request made). Emails show "
        "logo_url instead, since mail clients drop inline SVG.",
    )
    logo_url: Annotated[str, AfterValidator(https_url)] = Field(
        "",
        examples=["https://www.example.com/logo.png"],
        description="An https URL of a PNG logo on your own site, shown in emails (and on "
        "pages without logo_svg_file). Empty: the company name in text.",
    )
    primary_colour: Annotated[str, AfterValidator(colour)] = Field(
        "#0b5cad",
        description="Buttons, links and the header bar; must keep a 4.5:1 contrast with "
        "white (WCAG 2.1 AA), checked at start.",
    )
    text_colour: Annotated[str, AfterValidator(colour)] = Field(
        "#1f2933", description="Body text; 4.5:1 with the background at least."
    )
    background_colour: Annotated[str, AfterValidator(colour)] = Field(
        "#f4f5f7", description="Behind the card of pages and emails."
    )
    support_email: Annotated[str, AfterValidator(support_address)] = Field(
        "", examples=["suport@example.com"], description="Shown in every footer."
    )
    support_phone: str = Field(
        "", examples=["+40 21 000 0000"], description="Shown in every footer, as written."
    )
    support_url: Annotated[str, AfterValidator(https_url)] = Field(
        "", examples=["https://www.example.com/suport"], description="A help page."
    )
    privacy_url: Annotated[str, AfterValidator(https_url)] = Field(
        "",
        examples=["https://www.example.com/confidentialitate"],
        description="The privacy policy, linked from every page and footer.",
    )
    terms_url: Annotated[str, AfterValidator(https_url)] = Field(
        "", description="The terms of service, linked beside the privacy policy."
    )

    def shown(self, company: str) -> dict[str, str]:
        """What pages and emails show as `brand`: these values but the SVG file (pages inline
        it themselves; mail clients drop it), `company`, the name to show, and `contact`,
        the support contact in one line for the sentences that ask the subscriber to."""
        values = self.model_dump(exclude={"logo_svg_file"})
        values["company"] = company
        values["contact"] = " · ".join(
            v for v in (self.support_email, self.support_phone, self.support_url) if v
        )
        return values

    @field_validator("support_phone")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n<>"):
            raise ValueError("must be one line of text")
        return value.strip()

    @field_validator("logo_svg_file")
    @classmethod
    def _an_svg(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        head = value.read_bytes()[: LOGO_SVG_BYTES_AT_MOST + 1]
        if len(head) > LOGO_SVG_BYTES_AT_MOST:
            raise ValueError(f"is larger than {LOGO_SVG_BYTES_AT_MOST // 1024} KiB")
        if b"<svg" not in head:
            raise ValueError("is not an SVG image (no <svg element)")
        if b"<script" in head.lower():
            raise ValueError("contains a <script>: a logo must not run code")
        return value

    @field_validator("primary_colour")
    @classmethod
    def _readable_on_white(cls, value: str) -> str:
        if contrast(value, "#ffffff") < AA_CONTRAST:
            ratio = contrast(value, "#ffffff")
            raise ValueError(
                f"has a contrast of {ratio:.1f}:1 with white; WCAG 2.1 AA needs "
                f"{AA_CONTRAST}:1 for the text of links and buttons"
            )
        return value

    @field_validator("background_colour")
    @classmethod
    def _text_readable(cls, value: str, info: ValidationInfo) -> str:
        text = info.data.get("text_colour")
        if text and contrast(text, value) < AA_CONTRAST:
            raise ValueError(
                f"has a contrast of {contrast(text, value):.1f}:1 with text_colour; "
                f"WCAG 2.1 AA needs {AA_CONTRAST}:1"
            )
        return value
