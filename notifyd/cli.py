"""The `notifyd` command: run | check-config | migrate [--check] | simulate | preview |
privacy export|erase|restrict|lift | send | test-email (relay_cli.py) | --version.
command.py (the executable) sends `notifyd send` straight to send_cli.py; it is declared
here too, so `--help` lists it; `migrate` is migrate_cli.py's."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from notifyd import __version__, migrate_cli, privacy_cli, relay_cli, send_cli
from notifyd.catalogue.locale import LANGUAGES
from notifyd.output import reader_went_away
from notifyd.settings import ConfigError, Settings, load

# sysexits.h EX_CONFIG: systemd can be told not to restart on it (RestartPreventExitStatus).
EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69
DEFAULT_CONFIG = "/etc/notifyd/notifyd.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifyd", description="Account-notification daemon: signed webhooks in, email out."
    )
    parser.add_argument("--version", action="version", version=f"notifyd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config", "-c", default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})"
        )
        return sub

    with_config("run", "run the daemon until SIGTERM (SIGHUP reloads the config)")
    check = with_config("check-config", "validate the config file; exit 78 naming every bad key")
    check.add_argument(
        "--strict",
        action="store_true",
        help="also exit 78 on warnings (placeholder or weak secrets, unreachable links)",
    )
    migrate = with_config("migrate", "apply database migrations and exit")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing: exit 0 if the schema is current, 3 if migrations are pending, "
        "4 if a newer notifyd migrated it (docs/operations.md)",
    )
    _simulate_arguments(
        with_config("simulate", "sign a sample event and post it to the running daemon")
    )

    relay_cli.declare(
        with_config(
            "test-email",
            "send one message through the configured relay, printing every SMTP step, then "
            "the SPF, DKIM and DMARC records the sender domain needs",
        )
    )

    send = "sign an event and post it to notifyd, as a PBX or billing system does (no config)"
    send_cli.add_arguments(
        commands.add_parser("send", help=send, description=send, usage=send_cli.USAGE)
    )

    rights = "the subscriber's rights (SPEC §2), account by account"
    privacy = commands.add_parser("privacy", help=rights, description=rights)
    privacy_cli.declare(
        privacy.add_subparsers(dest="action", required=True, metavar="ACTION"), DEFAULT_CONFIG
    )

    preview = commands.add_parser(
        "preview",
        help="render a notice from sample data, without a database (for template editing)",
        description="Render a notice of EVENT_TYPE (or notice kind, e.g. credit.critical) "
        "from sample data and print it: the text part by default, the HTML part with --html.",
    )
    preview.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. voicemail.received")
    preview.add_argument("--lang", choices=LANGUAGES, default="ro")
    preview.add_argument("--html", action="store_true", help="print the HTML part")
    preview.add_argument(
        "--config", "-c", help="use this config's [templates] folder, sender and Reply-To"
    )
    return parser


def _simulate_arguments(simulate: argparse.ArgumentParser) -> None:
    simulate.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. call.missed")
    simulate.add_argument("--source", help="configured source to sign for (default: usual one)")
    simulate.add_argument("--account", default="acc-1001", help="account_id (default acc-1001)")
    simulate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a data field, e.g. --set email=me@example.com (repeatable)",
    )
    simulate.add_argument("--url", help="daemon base URL (default: from [http] in the config)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "preview":
        return _preview(args)
    if args.command == "send":
        return send_cli.run(args)
    try:
        settings = load(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        from notifyd.http.pages.checks import pages_for
        from notifyd.mail.previews import renderer_for

        try:
            renderer_for(settings)
            pages_for(settings)
        except ConfigError as error:
            print(error, file=sys.stderr)
            return EXIT_CONFIG
        return _report_warnings(settings, strict=args.strict)
    if args.command == "run":
        return _run(settings)
    if args.command == "migrate":
        return asyncio.run(migrate_cli.migrate(settings, check=args.check))
    if args.command == "simulate":
        return _simulate(settings, args)
    if args.command == "privacy":
        return asyncio.run(privacy_cli.run(settings, args))
    if args.command == "test-email":
        return relay_cli.run(settings, args)
    raise AssertionError(args.command)


def _report_warnings(settings: Settings, *, strict: bool) -> int:
    """A usable file: one line per warning on stderr; with --strict any warning is 78."""
    from notifyd.settings import warnings

    found = warnings(settings)
    for key, message in found:
        print(f"{settings.path}: warning: {key}: {message}", file=sys.stderr)
    if strict and found:
        return EXIT_CONFIG
    print(f"{settings.path}: ok ({len(settings.sources)} sources)")
    return 0


def _fastest_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the `fast` extra): a quarter more webhooks a second."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run(settings: Settings) -> int:
    from notifyd.daemon import serve
    from notifyd.logs import configure

    configure(settings.logging.level, settings.logging.format)
    try:
        with asyncio.Runner(loop_factory=_fastest_loop()) as runner:
            runner.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except ConfigError as error:  # a broken template override, found at start
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        print(f"notifyd: cannot start: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    """A sample event, posted by notifyd.client as `notifyd send` posts any event, signed
    with the source's first secret from the daemon's own config."""
    from notifyd import client
    from notifyd.catalogue.samples import USUAL_SOURCE, sample_event

    # Events go to `events` sources only; the others take bounce reports (/v1/reports/).
    takes_events = [name for name, s in settings.sources.items() if s.kind == "events"]
    source_name = args.source or USUAL_SOURCE.get(args.event_type)
    if source_name not in settings.sources:
        source_name = args.source or next(iter(takes_events), None)
    if source_name is None or source_name not in settings.sources:
        print(f"no source {source_name!r} in {settings.path}", file=sys.stderr)
        return EXIT_CONFIG
    if source_name not in takes_events:
        kind = settings.sources[source_name].kind
        print(
            f"source {source_name!r} is a {kind!r} source, which takes bounce reports, not"
            f" events: name an events source with --source",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        overrides = typed_overrides(args.event_type, args.set)
        event = sample_event(args.event_type, args.account, datetime.now(UTC), **overrides)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    host = settings.http.host if settings.http.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    base = args.url or f"{settings.http.scheme}://{host}:{settings.http.port}"
    url = f"{base.rstrip('/')}/v1/webhooks/{source_name}"
    sender = client.Client(url, settings.sources[source_name].secrets[0])
    try:
        receipt = sender.send(event)
    except client.Refused as refusal:
        print(f"POST {url} -> {refusal}", file=sys.stderr)
        return 1
    except client.Unavailable as error:
        print(f"cannot reach the daemon at {url}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    answer = {"event_id": receipt.event_id, "duplicate": receipt.duplicate}
    print(f"POST {url} -> {receipt.status} {json.dumps(answer)}")
    return 0


# Event types whose notice has another kind: preview the usual one.
PREVIEW_KIND = {"account.updated": "account.email_changed", "billing.balance_updated": "credit.low"}


def _preview(args: argparse.Namespace) -> int:
    from notifyd.catalogue.samples import NOTICE_KINDS
    from notifyd.mail.previews import renderer_for, sample_view
    from notifyd.mail.rendering import Renderer, TemplateError

    kind = PREVIEW_KIND.get(args.event_type, args.event_type)
    if kind not in NOTICE_KINDS:
        known = sorted({*NOTICE_KINDS, *PREVIEW_KIND})
        print(f"unknown event type or kind {kind!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    renderer = Renderer("notifyd <notifyd@localhost>")
    if args.config:
        try:
            renderer = renderer_for(load(args.config))
        except ConfigError as error:
            print(error, file=sys.stderr)
            return EXIT_CONFIG
    try:
        rendered = renderer.render(sample_view(kind, args.lang))
    except TemplateError as error:
        print(f"template error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.html:
        return _write(rendered.html)
    return _write(f"Subject: {rendered.subject}\nDigest line: {rendered.line}\n\n{rendered.text}")


def _write(text: str) -> int:
    """Print to stdout; a reader that went away (`| head`) ends the command quietly."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        return reader_went_away()
    return 0


def typed_overrides(event_type: str, items: Sequence[str]) -> dict[str, object]:
    """`--set FIELD=VALUE` items as the event's fields: read by each field's type in the
    event schema, so a call_id of digits stays text and ring_seconds=40 is a number.
    Raises ValueError with one line naming the first item that cannot be its field's type."""
    from notifyd.catalogue.events import CATALOGUE

    model = CATALOGUE.get(event_type)
    # An unknown type is refused by sample_event, with the known ones listed.
    fields: dict[str, Any] = model.model_json_schema()["properties"] if model else {}
    overrides: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        if model is None:
            overrides[name] = text
        elif name not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(
                f"--set {name}: {event_type} has no field {name!r}; its fields: {known}"
            )
        else:
            overrides[name] = _typed_value(name, fields[name], text)
    return overrides


def _json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a field's schema allows (pydantic writes an optional one as anyOf)."""
    if "anyOf" in schema:
        return set().union(*(_json_types(option) for option in schema["anyOf"]))
    if "$ref" in schema:  # a nested model: attachments
        return {"object"}
    kind = schema.get("type", "string")
    return set(kind) if isinstance(kind, list) else {kind}


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list (a,b or a JSON array)",
    "object": "a JSON object",
}


def _typed_value(name: str, schema: dict[str, Any], text: str) -> object:
    kinds = _json_types(schema)
    if "null" in kinds and text == "null":
        return None  # an optional field left out, as a PBX that does not know it would
    if "string" in kinds:
        return text  # even when it looks like a number: the schema says text
    try:
        value: object = json.loads(text)
    except ValueError:
        value = text
    if "array" in kinds and not isinstance(value, list) and not text.lstrip().startswith("["):
        value = [part.strip() for part in text.split(",") if part.strip()]
    if _is_json_type(value, kinds):
        return value
    expected = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in sorted(kinds - {"null"}))
    raise ValueError(f"--set {name}: must be {expected}, got {text!r}")


def _is_json_type(value: object, kinds: set[str]) -> bool:
    # bool is an int in Python; `to_voicemail=1` or `pages=true` are mistakes, not values.
    if isinstance(value, bool):
        return "boolean" in kinds
    if isinstance(value, int):
        return bool(kinds & {"integer", "number"})
    if isinstance(value, float):
        return "number" in kinds
    if isinstance(value, list):
        return "array" in kinds
    if isinstance(value, dict):
        return "object" in kinds
    return False


if __name__ == "__main__":
    raise SystemExit(main())
