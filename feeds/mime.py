"""RFC 5322 messages as they go on the wire: header lines and the multipart/alternative body
that a built newsletter (`.eml`) and every message sent share.

Header values are cleaned of CR, LF and other controls before they are written, so nothing a
digest or a subscriber list holds can add a header. Text that is not ASCII goes as RFC 2047
encoded words, except where a header must stay plain ASCII (List-Unsubscribe, RFC 2369).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from email.header import Header
from email.utils import formataddr

from .model import clean_text

CRLF = b"\r\n"
LINE = 78
"""Lines are folded to this length where they can be (RFC 5322 2.1.1 allows 998)."""


def header_text(value: str) -> str:
    """Text safe for a header: no CR, LF or other control characters, single spaces."""
    return " ".join(clean_text(value.replace("\r", " ").replace("\n", " ")).split())


def header(name: str, value: str) -> bytes:
    """One header line: ASCII as is (folded at spaces by the email package when long),
    anything else as RFC 2047 encoded words."""
    value = header_text(value)
    if value.isascii() and len(name) + 2 + len(value) <= LINE:
        return f"{name}: {value}\r\n".encode("ascii")
    folded = Header(value, "us-ascii" if value.isascii() else "utf-8", header_name=name)
    encoded = folded.encode(linesep="\r\n", maxlinelen=LINE)
    return f"{name}: {encoded}\r\n".encode("ascii")


def address_header(name: str, display: str, address: str) -> bytes:
    """`Name <address>` (the name RFC 2047 encoded where needed; the address as given: ASCII,
    or UTF-8 in a message sent with SMTPUTF8)."""
    display = header_text(display)
    if not display:
        return f"{name}: {address}\r\n".encode()
    # formataddr quotes or encodes the name (and wants an ASCII address, which it then keeps).
    shown = formataddr((display, "x@x"), charset="utf-8").removesuffix(" <x@x>")
    return f"{name}: {shown} <{address}>\r\n".encode()


def list_id_header(title: str, list_id: str) -> bytes:
    """`List-Id: Title <id>` (RFC 2919): the title RFC 2047 encoded where needed, the id as is."""
    value = Header(header_text(title), "utf-8")
    value.append(f"<{list_id}>", "us-ascii")
    encoded = value.encode(linesep="\r\n", maxlinelen=LINE)
    return f"List-Id: {encoded}\r\n".encode()


def list_header(name: str, items: Iterable[str]) -> bytes:
    """A header that is a comma-separated list of `<URI>`s (RFC 2369), plain ASCII, folded only
    after a comma: never into encoded words, which would hide the URIs from mail clients."""
    line = f"{name}:"
    first = True
    for item in items:
        if not item.isascii() or any(c in item for c in "\r\n<>, "):
            raise ValueError(f"not an ASCII URI for {name}: {item!r}")
        part = f"<{item}>"
        if first:
            line += f" {part}"
        elif len(line.rsplit("\n", 1)[-1]) + 2 + len(part) > LINE:
            line += f",\r\n {part}"
        else:
            line += f", {part}"
        first = False
    return f"{line}\r\n".encode("ascii")


def base64_lines(data: bytes) -> bytes:
    """base64 in lines of 76 characters, each ended by CRLF (as the email package writes it)."""
    if not data:
        return b""
    encoded = base64.b64encode(data)
    return CRLF.join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + CRLF


def _part_headers(subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
    )


PART_HEADERS = {subtype: _part_headers(subtype) for subtype in ("plain", "html")}


def content_type(boundary: str) -> bytes:
    return f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode()


def alternative_body(boundary: str, text: bytes, html: bytes) -> bytes:
    """After the headers: the blank line, the text part, then the HTML part, both base64."""
    mark = b"\r\n--" + boundary.encode() + b"\r\n"
    return b"".join(
        [
            mark,
            PART_HEADERS["plain"],
            base64_lines(text),
            mark,
            PART_HEADERS["html"],
            base64_lines(html),
            b"\r\n--" + boundary.encode() + b"--\r\n",
        ]
    )
