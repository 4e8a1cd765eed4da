"""Every ``BOTWIRE_*`` setting parses, a bad value names its variable, and the README's
Settings table documents every variable with its true default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from botwire_server.settings import VARIABLES, Limits, Settings, SettingsError, load

README = Path(__file__).resolve().parents[1] / "README.md"

# variable -> (a good raw value, the parsed value, bad raw values)
SAMPLES: dict[str, tuple[str, Any, list[str]]] = {
    "BOTWIRE_HOST": ("0.0.0.0", "0.0.0.0", ["", "   "]),
    "BOTWIRE_PORT": ("8123", 8123, ["abc", "-1", "65536", "80.5", ""]),
    "BOTWIRE_DATABASE_URL": (
        "postgresql://postgres@127.0.0.1:5432/botwire",
        "postgresql://postgres@127.0.0.1:5432/botwire",
        ["", " "],
    ),
    "BOTWIRE_WRITES_PER_DAY": ("0", 0, ["-5", "many", "1e3"]),
    "BOTWIRE_NAMESPACE_MAX_BYTES": ("1048576", 1_048_576, ["-1", "1MB"]),
    "BOTWIRE_VALUE_MAX_BYTES": ("2048", 2048, ["-1", "2 KB"]),
    "BOTWIRE_TOKEN_WRITES_PER_DAY": ("500", 500, ["-1", "lots", "5.5"]),
    "BOTWIRE_TOKEN_MAX_BYTES": ("1048576", 1_048_576, ["-1", "1MB"]),
    "BOTWIRE_POOL_MIN": ("2", 2, ["0", "x"]),
    "BOTWIRE_POOL_MAX": ("20", 20, ["0", "ten"]),
    "BOTWIRE_STATEMENT_TIMEOUT_MS": ("250", 250, ["-1", "fast"]),
    "BOTWIRE_SHUTDOWN_TIMEOUT": ("2.5", 2.5, ["0", "-1", "soon"]),
    "BOTWIRE_LOG_LEVEL": ("WARNING", "warning", ["loud", ""]),
    "BOTWIRE_LOG_FORMAT": (" JSON ", "json", ["yaml", ""]),
    "BOTWIRE_METRICS": ("OFF", "off", ["no", "", "1"]),
    "BOTWIRE_METRICS_TOKEN": ("m" * 24, "m" * 24, ["short", "a b" * 8, ""]),
    "BOTWIRE_RETENTION": ("30d", 30 * 86_400.0, ["30x", "-1d", "0", "d"]),
    "BOTWIRE_RETENTION_INTERVAL": ("0.5", 0.5, ["0", "-1", "hourly"]),
    "BOTWIRE_WATCH_KEEPALIVE": ("0.5", 0.5, ["0", "-2", "often"]),
    "BOTWIRE_EXPIRY_INTERVAL": ("0.25", 0.25, ["0", "-1", "soon"]),
    "BOTWIRE_LIMITS": ("free-tier", "free-tier", ["", "free", "FREE-TIER", "unlimited"]),
    "BOTWIRE_HEADER_TIMEOUT": ("1.5", 1.5, ["0", "-1", "never"]),
    "BOTWIRE_BODY_TIMEOUT": ("2", 2.0, ["0", "-3", "slow"]),
    "BOTWIRE_MAX_HEADER_BYTES": ("8192", 8192, ["0", "1023", "64KiB"]),
    "BOTWIRE_MAX_CONNECTIONS": ("20", 20, ["0", "-1", "many"]),
    "BOTWIRE_AUTH": ("Tokens", "tokens", ["on", "", "none"]),
    "BOTWIRE_ADMIN_TOKEN": (
        "bw_admin_" + "a1" * 16,
        "bw_admin_" + "a1" * 16,
        ["secret", "bw_admin_short", "bw_Admin_" + "a" * 32, "bw__" + "a" * 32],
    ),
    "BOTWIRE_CORS_ORIGINS": (
        "https://a.example, http://localhost:3000/",
        ("https://a.example", "http://localhost:3000"),
        ["a.example", "https://a.example,ftp://b"],
    ),
    "BOTWIRE_IDEMPOTENCY_TTL": ("3600", 3600.0, ["0", "-1", "a day"]),
}
# Variables that set more than their own field: a preset fills in the limits it names.
SETS_OTHER_FIELDS = {"BOTWIRE_LIMITS"}


def field_value(settings: Settings, dest: str) -> Any:
    obj: Any = settings
    for part in dest.split("."):
        obj = getattr(obj, part)
    return obj


def test_samples_cover_every_variable() -> None:
    assert set(SAMPLES) == {name for name, *_ in VARIABLES}


@pytest.mark.parametrize("name, dest", [(v[0], v[1]) for v in VARIABLES])
def test_each_variable_parses(name: str, dest: str) -> None:
    raw, parsed, _ = SAMPLES[name]
    settings = load({name: raw})
    assert field_value(settings, dest) == parsed
    # Every other field keeps its default.
    default = Settings()
    for other_name, other_dest, *_ in VARIABLES:
        if other_name != name and name not in SETS_OTHER_FIELDS:
            assert field_value(settings, other_dest) == field_value(default, other_dest)


@pytest.mark.parametrize(
    "name, raw", [(name, bad) for name, (_, _, bads) in SAMPLES.items() for bad in bads]
)
def test_a_bad_value_names_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load({name: raw})
    assert name in str(caught.value)
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize(
    "raw, seconds", [("12h", 43_200.0), ("90m", 5400.0), ("3600", 3600.0), ("2w", 1_209_600.0)]
)
def test_retention_reads_durations_and_empty_keeps_everything(raw: str, seconds: float) -> None:
    assert load({"BOTWIRE_RETENTION": raw}).retention == seconds
    assert load({"BOTWIRE_RETENTION": ""}).retention is None
    assert load({}).retention is None


def test_pool_bounds_must_agree() -> None:
    with pytest.raises(SettingsError) as caught:
        load({"BOTWIRE_POOL_MIN": "5", "BOTWIRE_POOL_MAX": "2"})
    assert "BOTWIRE_POOL_MIN" in str(caught.value) and "BOTWIRE_POOL_MAX" in str(caught.value)


def test_writes_per_day_is_unlimited_by_default() -> None:
    assert load({}).limits == Limits(
        writes_per_day=0, namespace_max_bytes=52_428_800, value_max_bytes=102_400
    )


def test_free_tier_preset_and_explicit_limits_over_it() -> None:
    free = load({"BOTWIRE_LIMITS": "free-tier"})
    assert free.limits == Limits(
        writes_per_day=1000,
        namespace_max_bytes=52_428_800,
        value_max_bytes=102_400,
        token_writes_per_day=1000,
        token_max_bytes=52_428_800,
    )
    mixed = load(
        {
            "BOTWIRE_LIMITS": " free-tier ",
            "BOTWIRE_WRITES_PER_DAY": "0",
            "BOTWIRE_VALUE_MAX_BYTES": "5",
            "BOTWIRE_TOKEN_WRITES_PER_DAY": "0",
        }
    )
    assert mixed.limits == Limits(
        writes_per_day=0,
        namespace_max_bytes=52_428_800,
        value_max_bytes=5,
        token_writes_per_day=0,
        token_max_bytes=52_428_800,
    )


def test_an_unknown_preset_names_the_variable_and_the_choice() -> None:
    with pytest.raises(SettingsError) as caught:
        load({"BOTWIRE_LIMITS": "pro"})
    assert str(caught.value) == "BOTWIRE_LIMITS='pro' is invalid: must be free-tier (or unset)."


def test_unset_means_defaults_and_other_variables_are_ignored() -> None:
    assert load({}) == Settings()
    assert load({"BOTWIRE_URL": "http://x", "HOME": "/root"}) == Settings()


@pytest.mark.parametrize(
    "host, mode",
    [("127.0.0.1", "off"), ("localhost", "off"), ("::1", "off"), ("127.0.0.2", "off")]
    + [("0.0.0.0", "tokens"), ("::", "tokens"), ("10.0.0.5", "tokens"), ("example.com", "tokens")],
)
def test_auth_defaults_to_off_only_on_a_loopback_bind(host: str, mode: str) -> None:
    assert Settings(host=host).auth_mode() == mode
    assert Settings(host=host, auth="tokens").auth_mode() == "tokens"
    assert Settings(host=host, auth="off").auth_mode() == "off"


def test_flags_override_variables() -> None:
    settings = load({"BOTWIRE_PORT": "9000", "BOTWIRE_HOST": "0.0.0.0"})
    changed = settings.with_overrides(port=9100, host=None, database_url="memory:")
    assert (changed.port, changed.host, changed.database_url) == (9100, "0.0.0.0", "memory:")


def readme_settings_rows() -> dict[str, tuple[str, str]]:
    """variable -> (default, meaning) from the table in the README's Settings section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(BOTWIRE_[A-Z_]+)`", cells[0]) if len(cells) >= 3 else None
        if match:
            rows[match.group(1)] = (cells[1].strip("`"), cells[2])
    return rows


def test_readme_documents_every_setting_with_its_default() -> None:
    rows = readme_settings_rows()
    assert set(rows) == {name for name, *_ in VARIABLES}
    default = Settings()
    for name, dest, *_ in VARIABLES:
        documented, meaning = rows[name]
        value = field_value(default, dest)
        shown = "(unset)" if value in (None, (), "") else str(value)
        assert documented == shown, name
        assert meaning, name
