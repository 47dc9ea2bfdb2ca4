"""How a caller ID reads in an email: `phone` (an E.164 number grouped for reading, a
withheld one named in the notice's language, anything else as given) and the templates'
filters `phone` and `caller` (the same after "from" in a sentence). rendering.py registers
the filters; catalogue/phones.py decides what counts as withheld.
"""

from __future__ import annotations

import functools
import re

import jinja2
import phonenumbers

from notifyd.catalogue.phones import is_withheld, parse_international

WITHHELD_NUMBER = {"ro": "Număr ascuns", "en": "Withheld number"}
# The same after "from" in a sentence (a subject): "Missed call from a withheld number".
WITHHELD_CALLER = {"ro": "număr ascuns", "en": "a withheld number"}
# How a number is kept once validated (events.py): formatted for reading only in this shape.
_E164 = re.compile(r"\+[0-9]{2,15}")


@functools.lru_cache(maxsize=4096, typed=True)
def phone(value: str, language: str) -> str:
    """+40721555123 -> '+40 721 555 123'; a withheld number -> 'Număr ascuns' (ro),
    'Withheld number' (en); anything else (an extension, a name, a SIP URI) as given."""
    if is_withheld(value):
        return WITHHELD_NUMBER.get(language, WITHHELD_NUMBER["en"])
    parsed = parse_international(value) if _E164.fullmatch(value) else None
    if parsed is None:
        return value
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@jinja2.pass_context
def phone_in_language(context: jinja2.runtime.Context, value: str) -> str:
    # Templates write `number | phone`: the notice's language comes from the context, so
    # neither the packaged templates nor an operator's overrides have to pass it.
    return phone(value, context["lang"])


@jinja2.pass_context
def caller_in_language(context: jinja2.runtime.Context, value: str) -> str:
    # `caller_number | caller` in a sentence after "from"/"de la": a withheld caller reads as
    # words there ("from a withheld number"), not as the label the tables show.
    if is_withheld(value):
        language = context["lang"]
        return WITHHELD_CALLER.get(language, WITHHELD_CALLER["en"])
    return phone(value, context["lang"])
