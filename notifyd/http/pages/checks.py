"""pages_for(): the subscriber pages' templates of a config, each one rendered with sample
values first in both languages, so a broken override in the `pages/` subfolder of
[templates] folder is a config error at start, at reload (the running pages stay) and in
`notifyd check-config`, never a broken page in front of a subscriber. Its neighbours:
views.py builds the templates, preference_form.py gives the preference page its values
as a request would, daemon.py and cli.py call this."""

from __future__ import annotations

import jinja2

from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.pages import renewal, shell, views
from notifyd.http.pages.preference_form import changes_in_words, form_context
from notifyd.model import Subscriber
from notifyd.settings import ConfigError, Settings

_SAMPLE = Subscriber(account_id="acc-1001", email="ana.popescu@example.com", name="Ana Popescu")
_FORM = {"form": {"field": shell.CSRF_FIELD, "token": "sample"}, "action": "/v1/sample"}


def _render_samples(pages: views.Pages, settings: Settings, language: str) -> None:
    words, text = renewal.WORDS[language], shell.TEXT[language]
    other = {"lang": "en", "name": "English"}
    before = form_context(_SAMPLE, settings, False, language)
    pages.render("preferences.html", language, text["preferences"], **before, **_FORM)
    changed = changes_in_words(before, {**before, "offers": True}, language)
    pages.render("saved.html", language, text["saved"], changes=changed, back="/v1/sample")
    pages.render(
        "unsubscribe.html", language, text["title"], ask=text["ask"], button=text["button"], **_FORM
    )
    pages.render("message.html", language, text["title"], paragraphs=[text["done"]], switch=other)
    pages.render("expired.html", language, words["title"], words=words, switch=other, **_FORM)


def pages_for(settings: Settings) -> views.Pages:
    """The pages of these settings, every template tried first; ConfigError names each
    that fails."""
    key = "[templates] folder"
    try:
        pages = views.Pages(settings)
    except jinja2.TemplateError as error:
        raise ConfigError(settings.path, [(key, f"pages/style.css: {error}")]) from error
    problems = []
    for language in LANGUAGES:
        try:
            _render_samples(pages, settings, language)
        except jinja2.TemplateError as error:
            name = getattr(error, "name", None) or getattr(error, "filename", None) or "pages"
            problems.append((key, f"{name}: {error}"))
    if problems:
        raise ConfigError(settings.path, problems)
    return pages
