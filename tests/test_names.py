"""The naming rules of ``botwire_client.names``: limits in bytes, the sentence for each broken
rule, and JSON Schema fragments that accept every valid name (the OpenAPI document uses them)."""

from __future__ import annotations

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwire_client import names


@pytest.mark.parametrize(
    "key",
    ["user:42", "alice@example.com", "notes/2026-11.md", "café", " ", "🙂", "...", ".env", "%"],
)
def test_valid_keys(key: str) -> None:
    assert names.key_problem(key) is None
    assert names.check_key(key) == key
    assert names.namespace_problem(key) is None


def test_limits_are_bytes_of_utf8() -> None:
    assert names.key_problem("k" * 1024) is None
    assert names.key_problem("é" * 512) is None
    assert names.key_problem("🙂" * 256) is None
    assert names.key_problem("k" * 1025) == (
        f"Key '{'k' * 80}...' is 1025 bytes in UTF-8; the limit is 1024 bytes."
    )
    assert names.key_problem("🙂" * 257) is not None
    assert names.namespace_problem("n" * 256) is None
    assert names.namespace_problem("é" * 129) == (
        f"Namespace '{'é' * 80}...' is 258 bytes in UTF-8; the limit is 256 bytes."
    )


def test_each_broken_rule_has_its_sentence() -> None:
    assert names.key_problem("") == "Key is empty: use 1 to 1024 bytes of UTF-8."
    assert names.namespace_problem("") == "Namespace is empty: use 1 to 256 bytes of UTF-8."
    assert names.key_problem("..") == "Key '..' is not allowed: '.' and '..' are never names."
    assert names.namespace_problem(".") == (
        "Namespace '.' is not allowed: '.' and '..' are never names."
    )
    assert names.key_problem("a\x00b") == (
        "Key 'a\\x00b' holds the control character U+0000 at position 1; names may not hold "
        "U+0000-U+001F or U+007F."
    )
    assert names.key_problem("\x7f") is not None and names.key_problem("\x1f") is not None
    assert names.key_problem("\x80") is None  # only C0 controls and DEL are refused
    assert names.key_problem("\ud800") == (
        "Key '\\ud800' is not valid Unicode: it holds a lone surrogate."
    )
    assert names.key_problem(42) == "Key must be a string, not int."
    with pytest.raises(names.InvalidName, match="never names"):
        names.check_namespace("..")


def test_prefixes_may_be_empty_or_dots() -> None:
    for prefix in ("", ".", "..", "user:", "k" * 1024):
        assert names.prefix_problem(prefix) is None
    assert names.prefix_problem("k" * 1025) is not None
    assert names.prefix_problem("a\n") is not None


def test_path_segment() -> None:
    assert names.path_segment("a/b c:%") == "a%2Fb%20c%3A%25"


_key_schema = jsonschema_rs.validator_for(names.KEY_SCHEMA)
_ns_schema = jsonschema_rs.validator_for(names.NAMESPACE_SCHEMA)
_prefix_schema = jsonschema_rs.validator_for(names.PREFIX_SCHEMA)


@given(st.text(max_size=300))
def test_schemas_accept_every_valid_name(text: str) -> None:
    # JSON Schema counts characters, so the schemas may accept more than the rules (names over
    # the byte limit), but never less, and refuse control characters and '.' / '..' as well.
    if names.key_problem(text) is None:
        assert _key_schema.is_valid(text)
    if names.namespace_problem(text) is None:
        assert _ns_schema.is_valid(text)
    if names.prefix_problem(text) is None:
        assert _prefix_schema.is_valid(text)
    if any(c < "\x20" or c == "\x7f" for c in text) or text in {".", ".."}:
        assert not _key_schema.is_valid(text)
