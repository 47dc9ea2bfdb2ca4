"""[branding]: what pages and emails show of the provider, checked at load so that a
brand cannot make a page unreadable (WCAG 2.1 AA contrast), leak a visit (http links), or
run code (a logo with a script)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notifyd.settings import ConfigError, Settings, from_mapping
from notifyd.settings.branding import contrast

PATH = Path("/etc/notifyd/notifyd.toml")


def settings(**tables: dict[str, Any]) -> Settings:
    return from_mapping(tables, PATH, {})


def problems(**branding: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as refused:
        settings(branding=branding)
    return refused.value.problems


def test_contrast_is_wcag_s_ratio() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#ffffff", "#ffffff"), 1) == 1.0
    # WCAG's own example pair: #767676 on white is the lightest grey that passes AA.
    assert 4.5 <= contrast("#767676", "#ffffff") < 4.6


def test_a_primary_colour_unreadable_on_white_is_refused_with_its_ratio() -> None:
    [(key, message)] = problems(primary_colour="#7fb3e6")
    assert key == "[branding] primary_colour"
    assert "contrast of 2.2:1 with white" in message
    assert "4.5:1" in message


def test_text_unreadable_on_the_background_is_refused() -> None:
    [(key, message)] = problems(text_colour="#999999", background_colour="#ffffff")
    assert key == "[branding] background_colour"
    assert "with text_colour" in message


def test_colours_are_written_rrggbb() -> None:
    [(key, message)] = problems(primary_colour="blue")
    assert key == "[branding] primary_colour"
    assert '"#rrggbb"' in message
    assert settings(branding={"primary_colour": "#0B5CAD"}).branding.primary_colour == "#0b5cad"


@pytest.mark.parametrize("key", ["logo_url", "support_url", "privacy_url", "terms_url"])
def test_links_are_https_only(key: str) -> None:
    [(where, message)] = problems(**{key: "http://www.example.com/x"})
    assert where == f"[branding] {key}"
    assert "https URL" in message
    assert problems(**{key: "javascript:alert(1)"})


def test_support_contact_is_one_address_and_one_line() -> None:
    assert problems(support_email="a@example.com, b@example.com")
    assert problems(support_phone="+40 21\r\nBcc: x")
    ok = settings(branding={"support_email": "suport@example.com", "support_phone": " 021 "})
    assert (ok.branding.support_email, ok.branding.support_phone) == ("suport@example.com", "021")


def test_a_logo_that_is_no_svg_or_runs_a_script_is_refused(tmp_path: Path) -> None:
    png = tmp_path / "logo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    scripted = tmp_path / "scripted.svg"
    scripted.write_text('<svg xmlns="http://www.w3.org/2000/svg"><SCRIPT>x()</SCRIPT></svg>')
    fine = tmp_path / "logo.svg"
    fine.write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>')
    assert "not an SVG" in problems(logo_svg_file=str(png))[0][1]
    assert "<script>" in problems(logo_svg_file=str(scripted))[0][1]
    assert settings(branding={"logo_svg_file": str(fine)}).branding.logo_svg_file == fine


def test_the_company_is_named_even_when_branding_is_not_set() -> None:
    assert settings(branding={"company_name": "Exemplu"}).company == "Exemplu"
    sender = {"sender": "Notificări Exemplu <n@voip.example>"}
    assert settings(smtp=sender).company == "Notificări Exemplu"
    assert settings(smtp={"sender": "n@voip.example"}).company == "voip.example"
