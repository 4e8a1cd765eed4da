"""Names as the server takes them: the rules of ``botwire_client.names`` (their one home),
refused with the server's ``400 invalid_name``. The service layer checks every namespace and
key it receives with these; the HTTP layer's parameter parsing reuses them."""

from __future__ import annotations

from botwire_client import names

from .errors import InvalidInput


def namespace(raw: str) -> str:
    problem = names.namespace_problem(raw)
    if problem is not None:
        raise InvalidInput(problem, code="invalid_name")
    return raw


def key(raw: str) -> str:
    problem = names.key_problem(raw)
    if problem is not None:
        raise InvalidInput(problem, code="invalid_name")
    return raw


def prefix(raw: str) -> str:
    problem = names.prefix_problem(raw)
    if problem is not None:
        raise InvalidInput(problem, code="invalid_name")
    return raw
