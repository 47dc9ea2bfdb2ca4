"""Phone numbers and caller IDs: numbers with their country code parsed once per process,
and the caller IDs that say the caller withheld the number.

Parsing one with `phonenumbers` costs more than the rest of an event's validation, and a
missed call's numbers are parsed twice on their way: when the webhook is validated and when
its notice is written. Both go through this cache, so a host that takes the webhook and
sends its notice parses each number once.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

# What a PBX puts in a caller ID when the caller withheld it (CLIR): Asterisk and FreeSWITCH
# write "anonymous" (RFC 3323), carriers and older switches the other words.
WITHHELD_WORDS = frozenset(
    {"anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}
)
# A SIP or tel URI: its user part and host. `sip:anonymous@anonymous.invalid` is RFC 3323's
# anonymous caller.
_URI = re.compile(r"<?(?:sips?|tel):([^@;>]*)(?:@([^;>]*))?", re.IGNORECASE)
# A number written with its country code and the punctuation PBXes put in it.
_INTERNATIONAL = re.compile(r"\+[0-9 ().-]{1,60}")


@functools.lru_cache(maxsize=4096)
def parse_international(value: str) -> phonenumbers.PhoneNumber | None:
    """'+40721555123' parsed; None when it is not a number with a country code. The result
    is shared: read it, never change it."""
    try:
        return phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None


def is_withheld(value: str) -> bool:
    """'', 'Anonymous', 'sip:anonymous@anonymous.invalid': the caller withheld the number."""
    text = value.strip().lower()
    if not text or text in WITHHELD_WORDS:
        return True
    uri = _URI.match(text)
    return uri is not None and (uri[1] in WITHHELD_WORDS or uri[2] == "anonymous.invalid")


def normalised(value: str) -> str:
    """E.164 ('+40721555123') when `value` is a possible number with its country code,
    written with any of the usual punctuation; anything else as given."""
    if _INTERNATIONAL.fullmatch(value):
        parsed = parse_international(value)
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return value


def caller_id(value: str) -> str:
    """A caller ID as kept: a withheld word in lower case, a number in E.164, anything else
    (an extension, a name, a SIP URI, digits with * and #) as given."""
    if value.lower() in WITHHELD_WORDS:
        return value.lower()
    return normalised(value)
