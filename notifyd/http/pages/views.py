"""The subscriber pages' HTML and stylesheet, from Jinja2 templates: the packaged ones in
notifyd/templates/pages/ (base.html, the layout every page extends, with the [branding]
header and footer; style.css, the one stylesheet, its colours from [branding]), each
overridable by a file of the same name in the `pages/` subfolder of [templates] folder,
as email templates are (mail/rendering.py). Autoescaped.

shell.py and the page handlers (preferences.py, unsubscribe.py, renewal.py) ask this
module for a page; pages/checks.py renders every template with sample values at start and
on reload, so a broken override is a config error, never a broken page. No request ever
leaves for a third party: the logo is inlined SVG, or an <img> of [branding] logo_url whose
origin alone the Content-Security-Policy then allows.
"""

from __future__ import annotations

import functools
import hashlib
import zoneinfo
from typing import Any
from urllib.parse import urlsplit

import jinja2
import markupsafe

from notifyd.http.pages.words import LABELS
from notifyd.settings import Settings

# Where the stylesheet is served (http/pages/shell.py's route); a page links it with the
# hash of its content, so a changed stylesheet is fetched again however long it is cached.
STYLE_PATH = "/v1/pages/style.css"
PAGE_TEMPLATES = (
    "preferences.html",
    "saved.html",
    "unsubscribe.html",
    "message.html",
    "expired.html",
)
# The directives every answer carries; img-src gains the logo's origin when one is set.
BASE_POLICY = {
    "default-src": "'none'",
    "style-src": "'self'",
    "img-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
}


def content_security_policy(logo_url: str = "") -> str:
    directives = dict(BASE_POLICY)
    if logo_url:
        parts = urlsplit(logo_url)
        directives["img-src"] += f" {parts.scheme}://{parts.netloc}"
    return "; ".join(f"{name} {value}" for name, value in directives.items())


CONTENT_SECURITY_POLICY = content_security_policy()


def brand_of(settings: Settings) -> dict[str, object]:
    """[branding] as the pages show it: what emails show (BrandingSettings.shown), and the
    SVG logo inlined."""
    branding = settings.branding
    svg = None
    if branding.logo_svg_file is not None:
        # The operator's own file, checked at load for a <script>: inlined as is.
        svg = markupsafe.Markup(branding.logo_svg_file.read_text(encoding="utf-8"))  # noqa: S704
    return {**branding.shown(settings.company), "logo_svg": svg}


@functools.cache
def time_zones() -> tuple[tuple[str, str], ...]:
    """Every IANA zone of a place as (zone, its city as people write it), by city: the
    time-zone field's <datalist>, which a browser searches by either without JavaScript."""
    areas = ("Africa/", "America/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/")
    zones = [z for z in zoneinfo.available_timezones() if z.startswith(areas)]
    return tuple(
        sorted(((z, z.rsplit("/", 1)[-1].replace("_", " ")) for z in zones), key=lambda p: p[1])
    )


# A few cities as their own people write them: typed on the page, they are found too.
LOCAL_CITY_NAMES = {"București": "Europe/Bucharest", "Chișinău": "Europe/Chisinau"}


def zone_named(value: str) -> str | None:
    """The IANA zone a subscriber typed: a zone's name, or a city's (any case)."""
    value = value.strip()
    if not value:
        return None
    wanted = value.casefold()
    for zone, city in time_zones():
        if wanted in (zone.casefold(), city.casefold()):
            return zone
    for city, zone in LOCAL_CITY_NAMES.items():
        if wanted == city.casefold():
            return zone
    return None


class Pages:
    """The page templates of one config; a reload builds a new one."""

    def __init__(self, settings: Settings) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if settings.templates_folder is not None:
            loaders.append(jinja2.FileSystemLoader(str(settings.templates_folder)))
        loaders.append(jinja2.PackageLoader("notifyd", "templates"))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.brand = brand_of(settings)
        self.stylesheet = self._env.get_template("pages/style.css").render(brand=self.brand)
        self.style_version = hashlib.sha256(self.stylesheet.encode()).hexdigest()[:16]
        # An inlined logo asks for nothing: no origin to allow then.
        self.policy = content_security_policy(
            "" if self.brand["logo_svg"] else settings.branding.logo_url
        )

    def render(self, name: str, language: str, title: str, **context: Any) -> str:
        template = self._env.get_template(f"pages/{name}")
        return template.render(
            lang=language,
            title=title,
            labels=LABELS[language],
            brand=self.brand,
            style_url=f"{STYLE_PATH}?v={self.style_version}",
            **context,
        )
