"""[links]: how long the links in emails open, and how often a subscriber may ask for a fresh
preference link. The keys that seal them are [daemon] link_secret (service.py); the pages
that judge a link's age are in notifyd/http/pages/."""

from __future__ import annotations

from pydantic import Field

from notifyd.settings.fields import Section

# Mail providers act on old messages (a one-click unsubscribe from last year's offer): an
# unsubscribe link opens at least this long.
UNSUBSCRIBE_DAYS_AT_LEAST = 365


class LinkSettings(Section):
    """Links in emails. A preference link that has expired, or that the admin revoked
    (POST /v1/admin/subscribers/{id}/links/revoke), shows a page offering to email a fresh
    one to the account's address."""

    preferences_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="A preference link opens this many days after its email was sent.",
    )
    unsubscribe_days: int = Field(
        730,
        ge=UNSUBSCRIBE_DAYS_AT_LEAST,
        le=36500,
        description="An unsubscribe link (offers, digests) opens this many days after its "
        "email was sent; at least a year, since mail providers act on old messages.",
    )
    renewals_per_account_per_day: int = Field(
        3,
        ge=1,
        le=100,
        description="Fresh preference links emailed to one account in 24 hours, at most; "
        "further asks get the same answer and send nothing.",
    )
    renewals_per_client_per_hour: int = Field(
        10,
        ge=1,
        le=10000,
        description="Asks for a fresh link from one client address in an hour, per host, at "
        "most (behind a reverse proxy every client has the proxy's address: raise it).",
    )
