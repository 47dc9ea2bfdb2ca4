"""[retention]: how long each class of data is kept (SPEC §2), read by the daily purge
(storage/retention.py's steps, run by jobs.py). Webhook ids keep their own key,
[webhooks] idempotency_days (SPEC §3 names it); [attachments] keep_days, this section's
payload_days before it had a section, is still read (root.py moves it here)."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from notifyd.settings.fields import Section

_CENTURY = 36_500


class RetentionSettings(Section):
    """What notifyd keeps, and for how long (SPEC §2; docs/privacy.md tells each table). A
    daily job deletes or anonymises what is past its time, in small batches; [webhooks]
    idempotency_days is how long webhook ids are kept."""

    payload_days: int = Field(
        30,
        ge=0,
        le=3650,
        description="Voicemail audio and fax bytes, and the free text of webhook payloads "
        "(reason, changed_by, method, transcript, user_agent), are kept this many days after "
        "the notices of their event are delivered (or fail), then cleared.",
    )
    notice_days: int = Field(
        365,
        ge=30,
        le=_CENTURY,
        description="Notices and their delivery records (addresses, SMTP replies), events and "
        "hard-bounce records are deleted this many days after they were made.",
    )
    billing_days: int = Field(
        2555,
        ge=30,
        le=_CENTURY,
        description="Billing notices (credit added, payment confirmed) and their events, kept "
        "for accounting: 7 years by default. At least notice_days.",
    )
    closed_account_days: int = Field(
        1095,
        ge=0,
        le=_CENTURY,
        description="After account.closed: everything of the account (subscriber, "
        "preferences, consent history, credit state, events, notices) is deleted this many "
        "days after it closed, but for billing notices (billing_days). Its suppressed "
        "addresses stay suppressed.",
    )
    daily_at_hour: int = Field(
        3,
        ge=0,
        le=23,
        description="The purge runs once a day from this hour (UTC), on one host; a run "
        "missed while no daemon was up is made at the next start.",
    )
    batch_size: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="Rows deleted or cleared per transaction: each holds its locks briefly.",
    )

    @field_validator("billing_days")
    @classmethod
    def _not_before_the_others(cls, value: int, info: ValidationInfo) -> int:
        # "Kept longer for accounting": shorter would delete them before ordinary notices.
        notice_days = info.data.get("notice_days")
        if notice_days is not None and value < notice_days:
            raise ValueError("must be at least notice_days")
        return value
