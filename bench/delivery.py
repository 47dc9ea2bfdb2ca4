"""Sustained delivery: N queued notices delivered by one notifyd process to an SMTP sink
(its own process), against aiosmtplib sending the same rendered messages over the same
number of reused connections, in the same run. Also with a 200 KB voicemail attachment on
a tenth of them. And notifyd alone, the plain notices signed with DKIM (RSA-2048, and
dual RSA + Ed25519) against the same notices unsigned.

    .venv/bin/python bench/delivery.py [--notices 20000] [--audio-notices 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: run as a script
    CpuWatch,
    Postgres,
    Row,
    Sink,
    machine,
    notifyd_config,
    start_daemon,
    stop_daemon,
    table,
    throwaway_postgres,
)

from notifyd.catalogue.events import CATALOGUE, stored_fields
from notifyd.catalogue.samples import SAMPLE_BROADCASTS, sample_data, sample_wav
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import MailAttachment, Renderer
from notifyd.settings import SmtpSettings
from notifyd.storage import schema

LABELS = {False: "plain", True: "200 KB audio on 1/10"}
# notifyd and the baseline use as many connections: by default `[smtp] pool_size`'s.
CONNECTIONS = SmtpSettings().pool_size
AUDIO = sample_wav(seconds=12.5)  # 8 kHz 16-bit mono: ~200 KB


async def queue_notices(dsn: str, count: int, with_audio: bool) -> None:
    """Queue `count` due notices straight into a fresh database, as a broadcast would."""
    conn = await asyncpg.connect(dsn)
    try:
        await schema.migrate(conn)
        service, voicemail = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)"
            " VALUES ($1, 'admin', 'bench', 'notice.service', '*', now(), $2::jsonb)",
            service,
            json.dumps(SAMPLE_BROADCASTS["notice.service"]),
        )
        audio_every = 10 if with_audio else 0
        if with_audio:
            fields = sample_data("voicemail.received", "*", datetime.now(UTC))
            data = stored_fields(CATALOGUE["voicemail.received"].model_validate(fields))
            await conn.execute(
                "INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at,"
                " data) VALUES ($1, 'pbx', 'bench-vm', 'voicemail.received', '*', now(),"
                " $2::jsonb)",
                voicemail,
                json.dumps(data),
            )
            await conn.execute(
                "INSERT INTO attachments (id, event_id, role, filename, declared_type,"
                " content_type, size_bytes, content, state)"
                " VALUES ($1, $2, 'audio', 'msg0001.wav', 'audio/wav', 'audio/wav', $3, $4,"
                " 'ready')",
                uuid.uuid4(),
                voicemail,
                len(AUDIO),
                AUDIO,
            )
        await conn.execute(
            """INSERT INTO subscribers (account_id, email, name)
               SELECT 'acc-' || g, 'user' || g || '@client.example', 'Ana Popescu'
               FROM generate_series(1, $1) AS g""",
            count,
        )
        await conn.execute(
            """INSERT INTO notices (id, event_id, account_id, kind, category, recipient,
                                    language, timezone, message_id)
               SELECT t.id, CASE WHEN $2 > 0 AND t.g % $2 = 0 THEN $4::uuid ELSE $3::uuid END,
                      'acc-' || t.g,
                      CASE WHEN $2 > 0 AND t.g % $2 = 0 THEN 'voicemail.received'
                           ELSE 'notice.service' END,
                      CASE WHEN $2 > 0 AND t.g % $2 = 0 THEN 'voicemail' ELSE 'service' END,
                      'user' || t.g || '@client.example', 'ro', 'Europe/Bucharest',
                      '<' || t.id || '@voip.example>'
               FROM (SELECT g, gen_random_uuid() AS id FROM generate_series(1, $1) AS g) AS t""",
            count,
            audio_every,
            service,
            voicemail,
        )
    finally:
        await conn.close()


async def notifyd_rate(
    root: Path, dsn: str, sink: Sink, count: int, name: str, connections: int, extra: str = ""
) -> tuple[float, float]:
    """Messages a second, and notifyd's CPU microseconds per message (`extra`: more config)."""
    already = sink.count
    config = notifyd_config(root, name, dsn, sink.port, extra, connections=connections)
    process, _port = await start_daemon(config)
    # From "ready": the start (imports, template checks, migrations) is not delivery.
    started = time.time()
    cpu = CpuWatch(lambda: [process.pid])
    try:
        async with asyncio.timeout(600):
            finished = await sink.wait_for(already + count)
        used = cpu.seconds()
    finally:
        await stop_daemon(process)
    return count / (finished - started), used / max(count, 1) * 1e6


def rendered(with_audio: bool) -> tuple[bytes, bytes]:
    renderer = Renderer("Bench <bench@voip.example>")
    plain = renderer.mail(sample_view("notice.service", "ro"), datetime.now(UTC))
    audio = renderer.mail(
        sample_view("voicemail.received", "ro"),
        datetime.now(UTC),
        [MailAttachment("msg0001.wav", "audio/wav", AUDIO)] if with_audio else [],
    )
    return plain, audio


async def baseline_rate(
    sink: Sink, count: int, with_audio: bool, connections: int
) -> tuple[float, float]:
    """Messages a second, and the client's CPU microseconds per message."""
    plain, audio = rendered(with_audio)
    already = sink.count

    async def sender(numbers: range) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
        await client.connect()
        try:
            for n in numbers:
                data = audio if with_audio and n % 10 == 0 else plain
                await client.sendmail("bench@voip.example", [f"user{n}@client.example"], data)
        finally:
            await client.quit()

    started = time.time()
    cpu = CpuWatch(lambda: [os.getpid()])  # the client runs here, in this process
    await asyncio.gather(
        *(sender(range(1 + i, count + 1, connections)) for i in range(connections))
    )
    async with asyncio.timeout(600):
        finished = await sink.wait_for(already + count)
    return count / (finished - started), cpu.seconds() / max(count, 1) * 1e6


async def measure(
    pg: Postgres, count: int, audio_count: int, runs: int, connections: int = CONNECTIONS
) -> list[Row]:
    results: dict[str, list[float]] = {}
    sink = await Sink.start(report_every=50)
    try:
        for with_audio, size in ((False, count), (True, audio_count)):
            label = LABELS[with_audio]
            for run in range(runs):
                dsn = await pg.fresh_database()
                await queue_notices(dsn, size, with_audio)
                name = f"delivery-{label[:5]}-{run}"
                for who, (rate, cpu) in (
                    ("notifyd", await notifyd_rate(pg.root, dsn, sink, size, name, connections)),
                    ("baseline", await baseline_rate(sink, size, with_audio, connections)),
                ):
                    results.setdefault(f"{who} {label}", []).append(rate)
                    results.setdefault(f"{who} {label} cpu", []).append(cpu)
    finally:
        await sink.stop()
    # Also what a message costs in CPU (notifyd's process, the client's): a figure the rest
    # of a shared machine moves less than it moves a rate.
    return [
        Row(
            f"delivery of {size:,} queued notices, {label}{what}",
            unit,
            results[f"notifyd {label}{key}"],
            results[f"baseline {label}{key}"],
            f"aiosmtplib, {connections} connections",
        )
        for with_audio, size in ((False, count), (True, audio_count))
        for label in (LABELS[with_audio],)
        for what, unit, key in (("", "msg/s", ""), (", CPU per message", "us", " cpu"))
    ]


def dkim_section(root: Path, dual: bool) -> str:
    """[dkim] with a fresh RSA-2048 key, and with `dual` an Ed25519 key beside it."""
    keys: dict[str, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey] = {
        "private_key_file": rsa.generate_private_key(public_exponent=65537, key_size=2048)
    }
    if dual:
        keys["ed25519_key_file"] = ed25519.Ed25519PrivateKey.generate()
    lines = ["[dkim]", 'domain = "voip.example"', 'selector = "b1"', 'ed25519_selector = "b1e"']
    for setting, key in keys.items():
        path = root / f"bench-{setting}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        lines.append(f'{setting} = "{path}"')
    return "\n".join(lines)


DKIM_LABELS = {False: "DKIM RSA-2048", True: "DKIM RSA-2048 + Ed25519"}


async def measure_dkim(
    pg: Postgres, count: int, runs: int, connections: int = CONNECTIONS
) -> list[Row]:
    """The same plain notices delivered by notifyd without DKIM, signed with RSA, and
    dual-signed, alternating within each run (issue 22: signed >= 0.9x unsigned)."""
    results: dict[str, list[float]] = {}
    sink = await Sink.start(report_every=50)
    try:
        for run in range(runs):
            for label, extra in (
                ("unsigned", ""),
                (DKIM_LABELS[False], dkim_section(pg.root, dual=False)),
                (DKIM_LABELS[True], dkim_section(pg.root, dual=True)),
            ):
                dsn = await pg.fresh_database()
                await queue_notices(dsn, count, with_audio=False)
                name = f"delivery-dkim-{len(results)}-{run}"
                rate, cpu = await notifyd_rate(pg.root, dsn, sink, count, name, connections, extra)
                results.setdefault(label, []).append(rate)
                results.setdefault(f"{label} cpu", []).append(cpu)
    finally:
        await sink.stop()
    return [
        Row(
            f"delivery of {count:,} queued notices, plain, {label}{what}",
            unit,
            results[f"{label}{key}"],
            results[f"unsigned{key}"],
            "notifyd without DKIM",
        )
        for label in DKIM_LABELS.values()
        for what, unit, key in (("", "msg/s", ""), (", CPU per message", "us", " cpu"))
    ]


async def main(count: int, audio_count: int, runs: int, connections: int) -> None:
    async with throwaway_postgres() as pg:
        rows = await measure(pg, count, audio_count, runs, connections)
        rows += await measure_dkim(pg, count, runs, connections)
    print(f"delivery over {connections} SMTP connections, {runs} runs; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=20000)
    parser.add_argument("--audio-notices", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args()
    asyncio.run(main(args.notices, args.audio_notices, args.runs, args.connections))
