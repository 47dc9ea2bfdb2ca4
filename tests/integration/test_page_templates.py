"""The subscriber pages as templates: [branding] in every page (name, logo, support contact,
legal links) and in the stylesheet's colours, the logo's origin the only one the CSP adds,
an operator's override in the `pages/` subfolder of [templates] folder used, and a broken
one refused by check-config and by a reload (the running pages stay)."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

from tests.conftest import SmtpSink, load_config, running_daemon, write_config
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import welcome

BRANDING = {
    "company_name": "Exemplu Telecom",
    "primary_colour": "#8a1538",
    "support_email": "suport@telecom.example",
    "support_phone": "+40 21 000 0000",
    "privacy_url": "https://www.telecom.example/confidentialitate",
    "terms_url": "https://www.telecom.example/termeni",
}


def _packaged(name: str) -> str:
    return (resources.files("notifyd") / "templates" / "pages" / name).read_text(encoding="utf-8")


async def test_every_page_carries_the_brand_and_its_colours(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["branding"] = {**BRANDING, "logo_url": "https://cdn.telecom.example/logo.png"}
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        link = await welcome(daemon, smtp_sink)
        pages = {}
        for what, url in {
            "preferences": link,
            "tampered": link[:-4] + "AAAA",
            "unsubscribe": f"{daemon.base_url}/v1/unsubscribe/nothing",
        }.items():
            async with daemon.session.get(url) as page:
                pages[what] = (await page.text(), page.headers["Content-Security-Policy"])
        async with daemon.session.get(f"{daemon.base_url}/v1/pages/style.css") as sheet:
            style = await sheet.text()
    for what, (text, policy) in pages.items():
        assert "<title>" in text, what
        assert "Exemplu Telecom" in text, what
        assert '<img class="logo" src="https://cdn.telecom.example/logo.png"' in text, what
        assert 'href="mailto:suport@telecom.example"' in text, what
        assert 'href="tel:+40210000000"' in text, what
        assert 'href="https://www.telecom.example/confidentialitate"' in text, what
        assert 'href="https://www.telecom.example/termeni"' in text, what
        assert "img-src 'self' https://cdn.telecom.example;" in policy, what
    assert "background:#8a1538" in style


async def test_an_inlined_svg_logo_asks_for_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect/></svg>')
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["branding"] = {
        "logo_svg_file": str(logo),
        "logo_url": "https://cdn.telecom.example/logo.png",
    }
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            text = await page.text()
            policy = page.headers["Content-Security-Policy"]
    assert '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect/></svg>' in text
    assert "<img" not in text
    assert "cdn.telecom.example" not in policy
    # Without a company name the sender's display name is the brand.
    assert "Operator VoIP" in text


async def test_an_operators_page_override_is_used_and_a_broken_one_is_refused_on_reload(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    folder = tmp_path / "templates"
    (folder / "pages").mkdir(parents=True)
    override = folder / "pages" / "message.html"
    override.write_text(
        _packaged("message.html").replace(
            "{% block content %}", "{% block content %}<p>Sunați-ne la 021 000 0000.</p>"
        ),
        encoding="utf-8",
    )
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["templates"] = {"folder": str(folder)}
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        tampered = f"{daemon.base_url}/v1/preferences/nothing"
        async with daemon.session.get(tampered) as page:
            assert page.status == 404
            assert "Sunați-ne la 021 000 0000." in await page.text()
        override.write_text("{% extends 'pages/base.html' %}{% block content %}{{ nothing.here }}")
        assert await daemon.daemon.reload() is False
        async with daemon.session.get(tampered) as page:
            assert "Sunați-ne la 021 000 0000." in await page.text()


def test_check_config_names_a_broken_page_override(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    (folder / "pages").mkdir(parents=True)
    (folder / "pages" / "unsubscribe.html").write_text("{% extends 'pages/base.html' %}{% blok %}")
    config = admin_config(tmp_path, "postgresql://nobody@127.0.0.1:1/none", None)
    config["templates"] = {"folder": str(folder)}
    path = write_config(tmp_path / "check.toml", config)
    checked = subprocess.run(
        [sys.executable, "-m", "notifyd", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 78, (checked.stdout, checked.stderr)
    assert "[templates] folder" in checked.stderr
    assert "unsubscribe.html" in checked.stderr
    assert "preferences.html" not in checked.stderr
