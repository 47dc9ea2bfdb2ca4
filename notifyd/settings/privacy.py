"""[privacy]: how the subscriber rights of SPEC §2 are carried out (export and erasure:
notifyd/storage/export.py, erasure.py; the commands in cli.py and http/admin/privacy.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from notifyd.settings.fields import Env, Section


class PrivacySettings(Section):
    erasure_key: Annotated[str, Env("NOTIFYD_ERASURE_KEY")] = Field(
        "",
        repr=False,
        description="Keys the hashes that keep erased addresses off marketing lists (an "
        "import bringing one back finds it suppressed). Hosts sharing a database must share "
        "it; empty: a key is generated once and kept in state_dir/erasure-key. Losing it "
        "forgets which addresses were erased.",
    )
    erase_batch_rows: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Rows an erasure changes per transaction: short transactions, short locks.",
    )
