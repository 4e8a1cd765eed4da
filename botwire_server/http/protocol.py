"""The HTTP/1.1 protocol uvicorn runs: httptools when installed (the ``server`` extra installs
it), h11 otherwise.

httptools parses requests in C and halves the CPU time per request against h11, but its URL
parser refuses a request target over 65,535 bytes, and uvicorn then answers a plain-text 400.
No valid request comes near that length (names, prefixes and cursors are short), so such a
request is refused here with the canonical JSON error of an invalid parameter instead.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import msgspec

from ..errors import InvalidInput

# httptools.parse_url keeps offsets in 16 bits.
MAX_TARGET_BYTES = 65_535

_encode = msgspec.json.Encoder().encode


def http_protocol() -> Any:
    """The ``http`` setting for ``uvicorn.Config``: a protocol class, or ``"h11"``."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            url = getattr(self, "url", b"")
            if len(url) <= MAX_TARGET_BYTES:
                super().send_400_response(msg)
                return
            error = InvalidInput(
                f"The request target is {len(url)} bytes long; the longest accepted is "
                f"{MAX_TARGET_BYTES} bytes.",
                code="invalid_parameter",
            )
            body = _encode(error.body())
            content = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n",
                    b"\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(content))
            self.transport.close()

    return Protocol
