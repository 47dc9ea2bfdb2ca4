"""settings.load(): the TOML contract, every problem named by its key, environment overrides."""

from __future__ import annotations

import base64
import ipaddress
from datetime import time
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from notifyd.model import QuietHours, parse_quiet_hours
from notifyd.settings import ConfigError, Settings, load

SECRET_A = "whsec_" + base64.b64encode(b"settings-secret-a-0123456789abcd").decode()
SECRET_B = "whsec_" + base64.b64encode(b"settings-secret-b-0123456789abcd").decode()
SECRET_C = "whsec_" + base64.b64encode(b"settings-secret-c-0123456789abcd").decode()

FULL_CONFIG = f"""
[daemon]
state_dir = "state"

[http]
host = "0.0.0.0"
port = 9090

[database]
url = "postgresql://notifyd@db.example/notifyd"

[smtp]
host = "smtp.example.net"
port = 587
security = "starttls"
username = "notifyd"
password = "smtp-file-password"
sender = "Operator <notices@voip.example>"

[sources.pbx]
secrets = ["{SECRET_A}", "{SECRET_B}"]
allow_from = ["10.20.0.0/16", "2001:db8::/32", "192.0.2.7"]

[sources.billing]
secrets = ["{SECRET_C}"]

[defaults]
language = "en"
timezone = "America/New_York"
quiet_hours = "21:30-07:15"
"""

PBX_SOURCE = f"""
[sources.pbx]
secrets = ["{SECRET_A}"]
"""


def write(folder: Path, text: str, name: str = "notifyd.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(folder: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    return load(write(folder, text), environ or {})


def problems_of(folder: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(write(folder, text), environ or {})
    return caught.value


def message_for(error: ConfigError, key: str) -> str:
    messages = [message for problem_key, message in error.problems if problem_key == key]
    assert messages, f"no problem reported for {key!r}; got {error.problems}"
    return messages[0]


# -- a valid file ------------------------------------------------------------------------------


def test_full_valid_config_loads_every_contract_key(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_CONFIG)

    settings = load(path, {})

    assert settings.path == path
    assert settings.daemon.state_dir == (tmp_path / "state").resolve()
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == 9090
    assert settings.database.url == "postgresql://notifyd@db.example/notifyd"
    assert settings.smtp.host == "smtp.example.net"
    assert settings.smtp.port == 587
    assert settings.smtp.security == "starttls"
    assert settings.smtp.username == "notifyd"
    assert settings.smtp.password == "smtp-file-password"
    assert settings.smtp.sender == "Operator <notices@voip.example>"
    assert settings.smtp.sender_address == "notices@voip.example"
    assert sorted(settings.sources) == ["billing", "pbx"]
    assert settings.sources["pbx"].secrets == (SECRET_A, SECRET_B)
    assert settings.sources["pbx"].allow_from == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert settings.sources["billing"].secrets == (SECRET_C,)
    assert settings.sources["billing"].allow_from is None
    assert settings.defaults.language == "en"
    assert settings.defaults.timezone == "America/New_York"
    assert settings.defaults.quiet_hours == QuietHours(time(21, 30), time(7, 15))


def test_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "")

    assert settings.daemon.state_dir == (tmp_path / "var").resolve()
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8080
    assert settings.database.url == ""
    assert settings.smtp.host == ""
    assert settings.smtp.port == 25
    assert settings.smtp.security == "none"
    assert settings.sources == {}
    assert settings.defaults.language == "ro"
    assert settings.defaults.timezone == "Europe/Bucharest"
    assert settings.defaults.quiet_hours == QuietHours(time(22, 0), time(8, 0))
    assert settings.webhooks.timestamp_tolerance_seconds == 300
    assert settings.smtp.pool_size == 32
    assert settings.delivery.concurrency == 64


def test_notices_in_flight_follow_the_smtp_connections_unless_set(tmp_path: Path) -> None:
    # Two a connection: one waiting for its reply and record, one written behind it. More
    # only wait for a connection (and slowed delivery: bench/delivery.py --connections 4).
    assert load_text(tmp_path, "[smtp]\npool_size = 4\n").delivery.concurrency == 8
    explicit = load_text(tmp_path, "[smtp]\npool_size = 4\n[delivery]\nconcurrency = 3\n")
    assert explicit.delivery.concurrency == 3


def test_relative_state_dir_resolves_against_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc"
    elsewhere = tmp_path / "cwd"
    config_dir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = load(write(config_dir, '[daemon]\nstate_dir = "data/notifyd"\n'), {})

    assert settings.daemon.state_dir == (config_dir / "data" / "notifyd").resolve()
    assert settings.outbox_dir == (config_dir / "data" / "notifyd" / "outbox").resolve()


def test_absolute_state_dir_is_kept(tmp_path: Path) -> None:
    target = (tmp_path / "abs-state").resolve()

    settings = load_text(tmp_path, f'[daemon]\nstate_dir = "{target.as_posix()}"\n')

    assert settings.daemon.state_dir == target


def test_empty_quiet_hours_means_none(tmp_path: Path) -> None:
    settings = load_text(tmp_path, '[defaults]\nquiet_hours = ""\n')

    assert settings.defaults.quiet_hours is None


# -- environment overrides ---------------------------------------------------------------------


def test_database_url_from_environ_overrides_the_file(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        FULL_CONFIG,
        {"NOTIFYD_DATABASE_URL": "postgresql://env@db.internal/notifyd"},
    )

    assert settings.database.url == "postgresql://env@db.internal/notifyd"


def test_smtp_password_from_environ_is_used_when_the_file_has_none(tmp_path: Path) -> None:
    text = '[smtp]\nhost = "smtp.example.net"\nusername = "notifyd"\n'

    settings = load_text(tmp_path, text, {"NOTIFYD_SMTP_PASSWORD": "from-env"})

    assert settings.smtp.password == "from-env"


def test_smtp_password_from_environ_overrides_the_file(tmp_path: Path) -> None:
    settings = load_text(tmp_path, FULL_CONFIG, {"NOTIFYD_SMTP_PASSWORD": "from-env"})

    assert settings.smtp.password == "from-env"


def test_empty_environ_values_do_not_override_the_file(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path, FULL_CONFIG, {"NOTIFYD_DATABASE_URL": "", "NOTIFYD_SMTP_PASSWORD": ""}
    )

    assert settings.database.url == "postgresql://notifyd@db.example/notifyd"
    assert settings.smtp.password == "smtp-file-password"


def test_the_given_environ_is_used_instead_of_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFYD_DATABASE_URL", "postgresql://process@db.internal/x")

    settings = load_text(tmp_path, FULL_CONFIG, {})

    assert settings.database.url == "postgresql://notifyd@db.example/notifyd"


def test_username_without_any_password_is_a_problem(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smtp]\nhost = "smtp.example.net"\nusername = "notifyd"\n')

    assert "username is set" in message_for(error, "[smtp] password")


# -- every problem names its key ---------------------------------------------------------------


def test_port_of_wrong_type_names_the_key(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smtp]\nport = "25x"\n')

    assert error.problems == [("[smtp] port", "must be an integer, got '25x'")]


def test_true_for_an_integer_key_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, "[http]\nport = true\n")

    assert error.problems == [("[http] port", "must be an integer, got True")]


def test_port_out_of_range_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, "[smtp]\nport = 70000\n")

    assert message_for(error, "[smtp] port") == "must be between 1 and 65535, got 70000"


def test_bodies_in_flight_default_to_100_mib_and_must_fit_the_largest_body(
    tmp_path: Path,
) -> None:
    assert load_text(tmp_path, "").webhooks.max_bytes_in_flight == 100 * 1024 * 1024
    error = problems_of(tmp_path, "[webhooks]\nmax_body_bytes = 4096\nmax_bytes_in_flight = 2048\n")

    assert message_for(error, "[webhooks] max_bytes_in_flight") == (
        "must be at least max_body_bytes"
    )


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    error = problems_of(tmp_path, "[smtp]\nprot = 25\n")

    assert error.problems == [("[smtp] prot", "unknown key")]


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smpt]\nhost = "smtp.example.net"\n')

    assert error.problems == [("[smpt]", "unknown section")]


def test_bad_smtp_security_value_lists_the_choices(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smtp]\nsecurity = "ssl"\n')

    message = message_for(error, "[smtp] security")
    assert message == "must be one of 'none', 'starttls', 'tls', got 'ssl'"


def test_sender_without_an_address_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smtp]\nsender = "Operator"\n')

    assert message_for(error, "[smtp] sender").startswith("must be an address")


def test_secret_without_whsec_prefix_names_its_index(tmp_path: Path) -> None:
    raw = base64.b64encode(b"0123456789abcdef0123").decode()
    error = problems_of(tmp_path, f'[sources.pbx]\nsecrets = ["{raw}"]\n')

    assert error.problems == [
        ("[sources.pbx] secrets[0]", "must start with 'whsec_' (Standard Webhooks secret)")
    ]


def test_secret_with_bad_base64_names_its_index(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[sources.pbx]\nsecrets = ["whsec_not*base64!"]\n')

    assert error.problems == [("[sources.pbx] secrets[0]", "is not valid base64 after 'whsec_'")]


def test_secret_shorter_than_16_bytes_is_rejected(tmp_path: Path) -> None:
    short = "whsec_" + base64.b64encode(b"8-bytes!").decode()
    error = problems_of(tmp_path, f'[sources.pbx]\nsecrets = ["{SECRET_A}", "{short}"]\n')

    assert error.problems == [
        ("[sources.pbx] secrets[1]", "key is 8 bytes; use at least 16 (24 to 64 recommended)")
    ]


def test_bad_cidr_in_allow_from_names_its_index(tmp_path: Path) -> None:
    text = PBX_SOURCE + 'allow_from = ["10.0.0.0/33", "192.0.2.0/24", "pbx.example"]\n'

    error = problems_of(tmp_path, text)

    assert [key for key, _ in error.problems] == [
        "[sources.pbx] allow_from[0]",
        "[sources.pbx] allow_from[2]",
    ]
    assert "'10.0.0.0/33'" in message_for(error, "[sources.pbx] allow_from[0]")


def test_missing_secrets_is_required(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[sources.pbx]\nallow_from = ["10.0.0.0/8"]\n')

    # Required of an events (or mta) source; a sending service's source has none.
    assert error.problems == [("[sources.pbx] secrets", "must list at least one secret")]


def test_empty_secrets_list_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, "[sources.pbx]\nsecrets = []\n")

    assert error.problems == [("[sources.pbx] secrets", "must list at least one secret")]


def test_source_name_must_be_lowercase(tmp_path: Path) -> None:
    error = problems_of(tmp_path, f'[sources.PBX]\nsecrets = ["{SECRET_A}"]\n')

    assert [key for key, _ in error.problems] == ["[sources.PBX]"]


def test_unknown_timezone_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[defaults]\ntimezone = "Europe/Bucuresti"\n')

    assert message_for(error, "[defaults] timezone").startswith(
        "unknown time zone 'Europe/Bucuresti'"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("22-08", "must look like '22:00-08:00' or be empty"),
        ("25:00-08:00", "has an impossible time"),
        ("22:00-08:60", "has an impossible time"),
        ("08:00-08:00", "start and end are equal"),
    ],
)
def test_bad_quiet_hours_are_rejected(tmp_path: Path, value: str, expected: str) -> None:
    error = problems_of(tmp_path, f'[defaults]\nquiet_hours = "{value}"\n')

    assert expected in message_for(error, "[defaults] quiet_hours")


def test_unsupported_language_is_rejected(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[defaults]\nlanguage = "fr"\n')

    assert message_for(error, "[defaults] language") == "must be one of 'ro', 'en', got 'fr'"


def test_ca_file_resolves_against_the_config_files_folder(tmp_path: Path) -> None:
    (tmp_path / "relay-ca.pem").write_text("not parsed here\n", encoding="utf-8")

    settings = load_text(tmp_path, '[smtp]\nca_file = "relay-ca.pem"\n')

    assert settings.smtp.ca_file == (tmp_path / "relay-ca.pem").resolve()


def test_missing_ca_file_is_a_problem(tmp_path: Path) -> None:
    error = problems_of(tmp_path, '[smtp]\nca_file = "absent.pem"\n')

    expected = f"no such file: {(tmp_path / 'absent.pem').resolve()}"
    assert error.problems == [("[smtp] ca_file", expected)]


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[smtp]\nport = "25x"\nprot = 25\n'
        '[defaults]\ntimezone = "Mars/Olympus"\n'
        '[sources.pbx]\nsecrets = ["nope"]\n'
    )

    error = problems_of(tmp_path, text)

    assert {key for key, _ in error.problems} == {
        "[smtp] port",
        "[smtp] prot",
        "[defaults] timezone",
        "[sources.pbx] secrets[0]",
    }
    assert len(str(error).splitlines()) == 4


def test_config_error_message_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nport = "25x"\n')

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path}: [smtp] port: must be an integer, got '25x' (line 2)"


def test_each_problem_names_the_line_that_sets_its_key(tmp_path: Path) -> None:
    # A typo in a long file: the operator is told which key and where, not only which key.
    text = (
        "# notifyd\n\n"
        "[smtp]\n"
        'sender = "N <n@voip.example>"\n'
        "sender_names = { ro = 5 }\n"
        "\n"
        "[sources.pbx]\n"
        'secrets = ["nope"]\n'
        "\n"
        "[delivery]\n"
        "# how often to look for due notices\n"
        "pol_seconds = 2\n"
        "\n"
        "[colours]\n"
        "x = 1\n"
    )
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    lines = str(caught.value).splitlines()
    assert f"{path}: [delivery] pol_seconds: unknown key (line 12)" in lines
    assert any(line.startswith(f"{path}: [smtp.sender_names] ro: ") for line in lines)
    assert any(line.endswith("(line 5)") and "[smtp.sender_names] ro" in line for line in lines)
    assert any("[sources.pbx] secrets[0]" in line and line.endswith("(line 8)") for line in lines)
    assert f"{path}: [colours]: unknown section (line 14)" in lines
    # Problems themselves are unchanged: the admin API and tests read them as before.
    assert ("[delivery] pol_seconds", "unknown key") in caught.value.problems


def test_toml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp\nport = 25\n")

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    assert [key for key, _ in caught.value.problems] == ["syntax"]
    assert str(caught.value).startswith(f"{path}: syntax: ")


def test_a_file_that_is_not_utf8_is_one_config_error_naming_the_line(tmp_path: Path) -> None:
    # An editor set to Latin-2 (Romanian letters) saves "Notificări" as the byte 0xe3: TOML
    # is UTF-8, so the file cannot be read, but that is the operator's to fix, not a crash.
    path = tmp_path / "latin2.toml"
    text = '[daemon]\nstate_dir = "var"\n\n[smtp]\nsender = "Notificări <n@voip.example>"\n'
    path.write_bytes(text.encode("iso-8859-2"))

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    assert caught.value.problems == [
        ("file", "is not UTF-8 text (TOML must be): line 5, column 18; save it as UTF-8")
    ]
    assert str(caught.value).startswith(f"{path}: file: is not UTF-8")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    assert caught.value.problems == [("file", "does not exist")]
    assert str(path) in str(caught.value)


# -- [attachments] fetch_allow_hosts -------------------------------------------------------------


def test_fetch_allow_hosts_entries_may_carry_a_port(tmp_path: Path) -> None:
    text = (
        "[attachments]\nfetch_allow_hosts = "
        '["PBX.internal.example:8088", "127.0.0.1:8088", "[::1]:8088", "10.20.0.0/16", "fd00::7"]\n'
    )
    settings = load_text(tmp_path, text)
    assert settings.attachments.fetch_allow_hosts == (
        "pbx.internal.example:8088",
        "127.0.0.1:8088",
        "[::1]:8088",
        "10.20.0.0/16",
        "fd00::7",
    )


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("pbx.example:0", "port that is not a number from 1 to 65535: '0'"),
        ("pbx.example:http", "port that is not a number from 1 to 65535: 'http'"),
        ("[::1]x", "is not a host, [IPv6 address] or [IPv6 address]:port: '[::1]x'"),
        ("[pbx.example]:80", "is not a host name, IP address or CIDR network: '[pbx.example]:80'"),
        ("http://pbx.example/", "is a URL, not a host: 'http://pbx.example/'"),
        # Read as 127.0.0.1 by getaddrinfo(): an address written so is not a name.
        ("127.1", "is not a host name, IP address or CIDR network: '127.1'"),
        ("0x7f000001", "is not a host name, IP address or CIDR network: '0x7f000001'"),
        ("", "must be a host name, IP address or CIDR"),
    ],
)
def test_a_fetch_allow_hosts_entry_that_is_no_host_names_the_entry(
    tmp_path: Path, entry: str, reason: str
) -> None:
    error = problems_of(tmp_path, f"[attachments]\nfetch_allow_hosts = [{entry!r}]\n")
    assert reason in message_for(error, "[attachments] fetch_allow_hosts[0]")


# -- parse_quiet_hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-08:00", QuietHours(time(22, 0), time(8, 0))),
        (" 7:05 - 9:30 ", QuietHours(time(7, 5), time(9, 30))),
        ("13:00-14:00", QuietHours(time(13, 0), time(14, 0))),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_quiet_hours_accepts_valid_windows(text: str, expected: QuietHours | None) -> None:
    assert parse_quiet_hours(text) == expected


def test_quiet_hours_print_as_hh_mm_range() -> None:
    assert str(QuietHours(time(7, 5), time(22, 0))) == "07:05-22:00"


minute_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))


@given(start=minute_times, end=minute_times)
def test_parse_quiet_hours_round_trips_its_string_form(start: time, end: time) -> None:
    assume(start != end)
    window = QuietHours(start, end)

    assert parse_quiet_hours(str(window)) == window
