"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis).

A real server process serves ``/openapi.json``; schemathesis generates requests for every
operation from it, valid and invalid, sends them, and checks each response: never a 5xx, a
status code the document lists for the operation, a body that matches the documented schema,
the documented headers, and invalid input refused with a 4xx. Examples per operation are
bounded so ``make test`` stays short; ``make test-long`` runs many more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import positive_data_acceptance
from server_process import ServerProcess

from botwire_server.http import openapi

TOKEN = "bw_fuzz_" + "f" * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("fuzz") / "botwire.db"
    # A small value limit so that 413 is reachable by generated bodies.
    # With auth on, every request carries the operator's token (the document's bearer scheme);
    # schemathesis also checks that a missing or wrong token is refused.
    env = {
        "BOTWIRE_VALUE_MAX_BYTES": "2048",
        "BOTWIRE_AUTH": "tokens",
        "BOTWIRE_ADMIN_TOKEN": TOKEN,
    }
    with ServerProcess(f"sqlite:///{db}", env=env) as proc:
        yield proc


# The document the server serves is built from this constant (checked below), so it can be
# loaded at collection time, before any server runs. The watch route is an endless stream,
# which a request-response fuzzer cannot wait for; tests/test_watch.py covers it.
schema = schemathesis.openapi.from_dict(openapi.DOCUMENT).exclude(path="/namespaces/{ns}/watch")


@schema.auth()
class BearerToken:
    """The operator's token on every generated request (the document's bearer scheme)."""

    def get(self, case: Case[Any], context: Any) -> str:
        return TOKEN

    def set(self, case: Case[Any], data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )


# Every check runs except "schema-valid data must be accepted": some valid-looking requests are
# refused for reasons JSON Schema cannot state (If-Match together with a different
# expected_version, a cursor the server never issued, a revision above the head), and those
# answers are documented 400s, which the other checks still hold to the schema.
def call_and_validate(case: Case[Any], server: ServerProcess) -> None:
    case.call_and_validate(
        base_url=server.url,
        timeout=30,
        excluded_checks=[positive_data_acceptance],
    )


@pytest.mark.e2e
@schema.parametrize()
@fuzz_settings(25)
def test_api_conforms_to_its_openapi_document(case: Case[Any], server: ServerProcess) -> None:
    call_and_validate(case, server)


@pytest.mark.e2e
@pytest.mark.slow
@schema.parametrize()
@fuzz_settings(500)
def test_api_conforms_to_its_openapi_document_long(case: Case[Any], server: ServerProcess) -> None:
    call_and_validate(case, server)


@pytest.mark.e2e
def test_served_document_is_the_fuzzed_one(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == openapi.DOCUMENT
