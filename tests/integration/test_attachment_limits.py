"""A fax over the configured page or pixel limit is refused with a 422 on its field naming the
limit; one at the limits is accepted. The limits are the config's, read at start."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import PBX_SECRET, base_config, load_config, running_daemon
from tests.unit.attachment_support import tiff


def fax(document: bytes) -> dict[str, object]:
    return sample_event(
        "fax.received",
        "acc-1001",
        pages=1,
        document={
            "filename": "fax.tif",
            "content_type": "image/tiff",
            "data_base64": base64.b64encode(document).decode(),
        },
    )


@pytest.mark.parametrize(
    ("pages", "status", "limit"),
    [
        ([(800, 1000)] * 3, 202, None),
        ([(800, 1000)] * 4, 422, "[attachments] max_pages"),
        ([(800, 1000), (801, 1000)], 422, "[attachments] max_pixels"),
    ],
    ids=["at the limits", "a page too many", "a page too large"],
)
async def test_a_fax_over_a_limit_is_refused_on_its_field(
    pages: list[tuple[int, int]], status: int, limit: str | None, tmp_path: Path, database_url: str
) -> None:
    config = base_config(tmp_path, database_url, None)
    config["attachments"] = {"max_pages": 3, "max_pixels": 800 * 1000}
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        answer, body = await daemon.post("pbx", fax(tiff(pages)), PBX_SECRET)
    assert answer == status, body
    if limit is not None:
        assert list(body["fields"]) == ["data.document"]
        assert limit in body["fields"]["data.document"]
