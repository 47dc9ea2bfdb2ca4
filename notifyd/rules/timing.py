"""When a notice goes, and why: at once, after the subscriber's quiet hours, in their digest,
or held so that a storm of events does not become a storm of emails (the hourly cap, one
follow-up per burst of missed calls). Pure, no I/O; `routing` asks it for every notice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notifyd.catalogue.events import Category
from notifyd.model import RecentEmails, Subscriber
from notifyd.rules.preferences import digest_time_for, quiet_hours_for
from notifyd.rules.schedule import digest_due, release_time
from notifyd.settings import CallSettings, DefaultsSettings

DIGEST_MODES = ("hourly", "daily")
# A held notice waiting to be gathered into the follow-up email of a burst.
BURST = "burst"
# Notices that answer something the subscriber just did, or that cannot wait, go out even in
# quiet hours (as does every security notice). Everything else waits for quiet hours to end.
IMMEDIATE_KINDS = frozenset(
    {"account.created", "account.closed", "account.email_changed", "credit.critical"}
)
# What a notice due now says when nothing holds it; a burst or the hourly cap may still.
SENT_AT_ONCE = frozenset({"outside quiet hours: sent at once", "no quiet hours: sent at once"})


def when_due(
    kind: str,
    category: Category,
    mode: str,
    subscriber: Subscriber,
    defaults: DefaultsSettings,
    zone: str,
    due_at: datetime,
    *,
    waited: bool = False,
) -> tuple[datetime, str | None, list[str]]:
    """When a notice goes (quiet hours, digest) and why: (due_at, digest mode, reasons).
    `waited`: due_at is already later than the event (a missed call waiting for its
    voicemail), so nothing here is "at once"."""
    if kind in IMMEDIATE_KINDS or category is Category.SECURITY:
        reasons = ["sent at once: never waits for quiet hours"]
        if mode in DIGEST_MODES:
            reasons.append(f"not put in the {mode} digest: this notice cannot wait")
        return due_at, None, reasons
    quiet = quiet_hours_for(subscriber.preferences, defaults)
    if mode in DIGEST_MODES:
        scheduled = digest_due(
            mode, due_at, zone, digest_time_for(subscriber.preferences, defaults), None
        )
        due_at = release_time(scheduled, quiet, zone)
        why = (
            f"{category.value} notices go in the {mode} digest: held for the one sent at "
            f"{due_at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"
        )
        if due_at > scheduled:  # the digest's own time falls in quiet hours
            why += f", when quiet hours {quiet} end"
        return due_at, mode, [why]
    released = release_time(due_at, quiet, zone)
    if released > due_at:
        return released, None, [f"quiet hours {quiet} in {zone}: held until they end"]
    if quiet is None:
        return (
            due_at,
            None,
            ["no quiet hours: sent " + ("when the wait ends" if waited else "at once")],
        )
    if waited:
        return due_at, None, [f"the wait ends outside quiet hours {quiet} in {zone}"]
    return due_at, None, ["outside quiet hours: sent at once"]


def gather_storm(
    kind: str,
    category: Category,
    subscriber: Subscriber,
    recent: RecentEmails | None,
    defaults: DefaultsSettings,
    calls: CallSettings,
    hourly_cap: int,
    zone: str,
    due_at: datetime,
    reasons: list[str],
    *,
    wanted: datetime,
) -> tuple[datetime, str | None, list[str]]:
    """A storm does not become a storm of emails: past the hourly cap a notice waits for the
    hourly digest; a missed call soon after the last missed-call email waits for one
    follow-up email at the end of the burst window. (due_at, digest, reasons): a notice
    held here is no longer "sent at once", whatever its timing said. `wanted`: when it
    would go but for quiet hours (`due_at` is after them)."""
    if recent is None:
        return due_at, None, reasons
    kept = [reason for reason in reasons if reason not in SENT_AT_ONCE]
    if hourly_cap and recent.last_hour >= hourly_cap:
        quiet = quiet_hours_for(subscriber.preferences, defaults)
        # The hour the notice was wanted in, not the one after quiet hours end: that hour
        # may be quiet again (quiet hours of 23 h or more), which held it a second day.
        digest_at = digest_due("hourly", wanted, zone, defaults.digest_time, quiet)
        return (
            digest_at,
            "hourly",
            [
                *kept,
                f"hourly cap of {hourly_cap} {category.value} emails reached: waits for the "
                f"hourly digest at {local_time(digest_at, zone)}",
            ],
        )
    window = timedelta(seconds=calls.burst_window_seconds)
    if kind != "call.missed" or not window:
        return due_at, None, reasons
    held: datetime | None = None
    if recent.burst_at and due_at < recent.burst_at:
        held = recent.burst_at  # joins the follow-up already being gathered
    elif recent.last_at and due_at < recent.last_at + window:
        quiet = quiet_hours_for(subscriber.preferences, defaults)
        held = release_time(recent.last_at + window, quiet, zone)
    if held is not None:
        return (
            held,
            BURST,
            [
                *kept,
                f"a burst of missed calls: gathered into one follow-up email at "
                f"{local_time(held, zone)}",
            ],
        )
    return due_at, None, reasons


def local_time(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%H:%M} {zone}"
