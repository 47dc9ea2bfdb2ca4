"""contrib/hylafax's hooks, installed by the doc's install block and run as HylaFAX runs
them against a real notifyd: the doc's FaxDispatch lines sourced by bash in a spool folder
with the variables bin/faxrcvd sets (the hook itself runs under /bin/sh), and the doc's
FaxNotify lines with bin/notify's QFILE, WHY and JTIME over a q-file as faxq writes it. A
fax received reaches the subscriber as a PDF; a job done gives fax.sent, a failed one
fax.failed with its status; a requeued one nothing; with notifyd down the fax is spooled
and the hook exits 0."""

from __future__ import annotations

import io
import subprocess
from email.message import EmailMessage
from pathlib import Path

import asyncpg
from PIL import Image

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, Running, SmtpSink, running_daemon
from tests.integration.catalogue_support import sending_settings
from tests.integration.doc_support import owner
from tests.integration.send_support import BIN, ROOT, Ran, localized, run, snippet

INSTALLED = "/usr/local/share/notifyd/hylafax/"
COMMID = "000000012"
# faxrcvd's variables for a fax on iaxmodem ttyIAX0: CALLID1..4 as its CallIDPatterns
# (NMBR, NAME, ANID, NDID); PAGES and SENDER as faxinfo told faxrcvd.
RECEIVED = {
    "FILE": f"recvq/fax{COMMID}.tif",
    "DEVICE": "ttyIAX0",
    "COMMID": COMMID,
    "MSG": "",
    "CALLID1": "+40721555123",
    "CALLID2": "Ion Ionescu",
    "CALLID3": "+40721555123",
    "CALLID4": "+40312000300",
    "PAGES": "2",
    "SENDER": "+40 721 555 123",
}


def qfile(jobid: int, owner: str, status: str, npages: int) -> str:
    """A sendq/q<jobid> as faxq writes it (sendq(5)), after the job ended."""
    return f"""tts:1767261600
killtime:1767272400
retrytime:0
state:{7 if status else 8}
npages:{npages}
totpages:2
ntries:0
ndials:{1 if status else 0}
totdials:2
maxdials:12
tottries:2
maxtries:3
pagewidth:209
resolution:98
pagelength:297
priority:127
schedpri:127
minbr:0
desiredbr:13
desiredst:0
desiredec:2
desireddf:3
desiredtl:0
useccover:1
usexvres:0
external:+40312000200
number:0040312000200
mailaddr:{owner}@office.example
sender:{owner}
jobid:{jobid}
jobtag:
modem:any
faxnumber:
tsi:
receiver:
company:
location:
regarding:
comments:
client:localhost
owner:{owner}
groupid:{jobid}
signalrate:14400 bit/s
dataformat:2-D MMR
jobtype:facsimile
tagline:
subaddr:
passwd:
doneop:default
commid:00000004{jobid % 10}
csi:"+40 312 000200"
status:{status}
statuscode:{1 if status else 0}
returned:0
notify:none
pagechop:default
chopthreshold:3
!postscript:0::docq/doc{jobid}.ps
fax:0::docq/doc{jobid}.ps;a0
"""


def tiff(pages: int) -> bytes:
    """A fax as HylaFAX writes it into recvq: a multi-page bilevel TIFF."""
    images = [Image.new("1", (1728, 200), 1) for _ in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:], compression="group4")
    return out.getvalue()


def installed_hooks(tmp_path: Path, base_url: str) -> Path:
    """The doc's install block, run in this checkout with the test's folders and owner (its
    spool the one hylafax.conf names); the folder the hooks are in."""
    text = localized(snippet("hylafax-install"), base_url, tmp_path).replace(
        "-o uucp -g uucp", owner()
    )
    text = text.replace("/usr/local/share/notifyd", str(tmp_path / "share-notifyd"))
    subprocess.run(["/bin/bash", "-e", "-c", text], cwd=ROOT, check=True, timeout=30)
    hooks = tmp_path / "share-notifyd" / "hylafax"
    assert sorted(hook.name for hook in hooks.iterdir() if hook.stat().st_mode & 0o111) == [
        "notifyd-faxrcvd",
        "notifyd-notify",
    ]
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o750
    return hooks


def hylafax_spool(tmp_path: Path, base_url: str) -> tuple[Path, dict[str, str]]:
    """/var/spool/hylafax with the doc's etc/FaxDispatch and etc/FaxNotify (naming the hooks
    the doc's install block put in place), and the environment that points the
    hooks at the doc's hylafax.conf and account map, localized."""
    hooks = installed_hooks(tmp_path, base_url)
    spool = tmp_path / "hylafax"
    for folder in ("etc", "recvq", "sendq"):
        (spool / folder).mkdir(parents=True, exist_ok=True)
    accounts = tmp_path / "fax-accounts"
    accounts.write_text(snippet("hylafax-accounts"))
    conf = localized(snippet("hylafax-conf"), base_url, tmp_path)
    (tmp_path / "hylafax.conf").write_text(conf.replace("/etc/notifyd/fax-accounts", str(accounts)))
    # Appended to what the FaxDispatch had: HylaFAX's own routing by mail, now replaced.
    routed = 'case "$DEVICE" in ttyIAX*) SENDTO=faxes@office.example ;; esac\n'
    for name, file, before in (
        ("hylafax-faxdispatch", "FaxDispatch", routed),
        ("hylafax-faxnotify", "FaxNotify", ""),
    ):
        text = before + snippet(name).replace(INSTALLED, f"{hooks}/")
        (spool / "etc" / file).write_text(text)
    return spool, {"NOTIFYD_HYLAFAX_CONF": str(tmp_path / "hylafax.conf")}


async def faxrcvd(spool: Path, env: dict[str, str], variables: dict[str, str]) -> Ran:
    """What bin/faxrcvd does around etc/FaxDispatch: in the spool folder, with its variables
    set, `. etc/FaxDispatch` under bash; then prints the SENDTO it would mail."""
    script = 'cd "$0" && . etc/FaxDispatch && printf "SENDTO=%s\\n" "$SENDTO"'
    ran = await run(["bash", "-c", script, str(spool)], env={**env, **variables})
    assert ran.code == 0, ran
    return ran


async def notify(spool: Path, env: dict[str, str], jobid: int, why: str) -> Ran:
    """bin/notify's part: in the spool folder, QFILE WHY JTIME set, `. etc/FaxNotify`."""
    variables = {"QFILE": f"sendq/q{jobid}", "WHY": why, "JTIME": "0:45"}
    script = 'cd "$0" && . etc/FaxNotify; echo "notify went on to mail the submitter"'
    ran = await run(["bash", "-c", script, str(spool)], env={**env, **variables})
    assert ran.code == 0, ran
    assert "went on" not in ran.out, "FaxNotify let bin/notify mail the submitter too"
    return ran


async def subscribers(daemon: Running, *accounts: str) -> None:
    for account in accounts:
        created = sample_event("account.created", account, email=f"{account}@client.example")
        assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202


def plain(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def pdfs(smtp_sink: SmtpSink) -> list[object]:
    """The PDFs of every email the sink took (a fax received is one)."""
    return [
        part.get_payload(decode=True)
        for message in smtp_sink.messages
        for part in message.walk()
        if part.get_content_type() == "application/pdf"
    ]


async def test_a_fax_received_reaches_its_did_account_as_a_pdf(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        spool, env = hylafax_spool(tmp_path, daemon.base_url)
        (spool / RECEIVED["FILE"]).write_bytes(tiff(2))
        await subscribers(daemon, "acc-1001")
        ran = await faxrcvd(spool, env, RECEIVED)
        assert ran.out == "SENDTO=\n", "FaxDispatch left faxrcvd a SENDTO to mail"
        # Received with an error: faxrcvd tells the FaxMaster; notifyd gets nothing.
        broken = {**RECEIVED, "COMMID": "000000013", "MSG": "RSPREC error/got EOT"}
        await faxrcvd(spool, env, broken)
        await smtp_sink.wait_for(2)  # the welcome, the fax
    rows = await db.fetch("SELECT type, account_id, data, webhook_id FROM events")
    [fax] = [row for row in rows if row["type"].startswith("fax.")]
    assert fax["type"] == "fax.received"
    assert fax["account_id"] == "acc-1001"  # did:+40312000300, from CALLID4
    assert fax["data"]["remote_number"] == "+40721555123"
    assert fax["data"]["pages"] == 2
    assert fax["webhook_id"].startswith("fax.received-")
    assert fax["webhook_id"].endswith(COMMID)
    [pdf] = pdfs(smtp_sink)  # the TIFF, made a PDF by notifyd
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF")
    assert list((tmp_path / "spool").glob("*.json")) == []


async def test_jobs_done_and_failed_give_fax_sent_and_fax_failed_with_the_reason(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        spool, env = hylafax_spool(tmp_path, daemon.base_url)
        jobs = {15: ("ion", "", 2), 16: ("maria", "No carrier detected", 1), 17: ("ion", "", 0)}
        for jobid, (owner, status, npages) in jobs.items():
            (spool / "sendq" / f"q{jobid}").write_text(qfile(jobid, owner, status, npages))
        await subscribers(daemon, "acc-1001", "acc-1002")
        await notify(spool, env, 15, "done")
        await notify(spool, env, 16, "failed")
        await notify(spool, env, 17, "requeued")  # it is not over: nothing yet
        messages = await smtp_sink.wait_for(4)
    rows = await db.fetch("SELECT type, account_id, data FROM events WHERE type LIKE 'fax.%'")
    by_type = {row["type"]: row for row in rows}
    assert sorted(by_type) == ["fax.failed", "fax.sent"]
    sent, failed = by_type["fax.sent"], by_type["fax.failed"]
    assert (sent["account_id"], failed["account_id"]) == ("acc-1001", "acc-1002")  # owner:
    assert sent["data"]["remote_number"] == "+40312000200"  # external:, not number:
    assert (sent["data"]["pages"], failed["data"]["pages"]) == (2, 1)
    assert failed["data"]["reason"] == "No carrier detected"
    [told] = [m for m in messages if "No carrier detected" in plain(m)]
    assert told["To"] == "acc-1002@client.example"


async def test_with_notifyd_down_the_fax_is_spooled_and_posted_by_the_drain(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    spool, env = hylafax_spool(tmp_path, "http://127.0.0.1:9")  # nothing listens
    (spool / RECEIVED["FILE"]).write_bytes(tiff(1))
    ran = await faxrcvd(spool, env, {**RECEIVED, "PAGES": "1"})
    assert "spool" in ran.err, ran
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscribers(daemon, "acc-1001")
        drain = [f"{BIN}/notifyd", "send", "--drain", str(tmp_path / "spool")]
        drained = await run(
            [
                *drain,
                "--url",
                f"{daemon.base_url}/v1/webhooks/pbx",
                "--secret-file",
                str(tmp_path / "pbx.secret"),
            ]
        )
        assert drained.code == 0, drained
        await smtp_sink.wait_for(2)
    assert [r["type"] for r in await db.fetch("SELECT type FROM events")].count("fax.received") == 1
    assert len(pdfs(smtp_sink)) == 1
