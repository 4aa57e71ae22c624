"""Byte-level assembly of bulk mail: a message compiled once, filled per recipient by joining.

The body parts are quoted-printable (7-bit safe, so no relay needs 8BITMIME, and every line
stays under 76 octets, far inside SMTP's 998, RFC 5321 4.5.3.1.6). The static text between
per-recipient slots is encoded once; each static chunk ends with a soft line break (``=`` CRLF,
RFC 2045 6.7 rule 5) and each slot value is encoded on its own lines and ends with one too, so
chunks and values concatenate into valid quoted-printable in any combination.

Headers that hold user input (subject, names) are folded and RFC 2047-encoded once by the
stdlib policy; per-recipient headers (To, Message-ID, Date, List-Unsubscribe) are checked for
CR, LF and NUL before they are written (header injection).
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.policy
import re
import secrets
import time
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime
from html.parser import HTMLParser

from distributor.mail.addresses import wire_address

_SLOT = re.compile(r"xQzSLOT(\d{4})zQx")
SOFT_BREAK = b"=\r\n"  # RFC 2045 6.7 rule 5: decodes to nothing
_SAFE_ADDRESS = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# RFC 6532 3.2: atext extended by UTF8-non-ascii; the domain stays in its A-label form.
_SAFE_UTF8_ADDRESS = re.compile(
    r"[!#-'*+\-/-9=?A-Z^-~.\u0080-\U0010ffff]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 .,'()!?#&+/_-]*")
_FORBIDDEN = re.compile(r"[\r\n\x00]")


class SlotMarkers:
    """Hands out inert markers (plain letters and digits, unchanged by escaping and MJML)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def slot(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"xQzSLOT{self.names.index(name):04d}zQx"


_QP_LINE_MAX = 76  # RFC 2045 6.7 rule 5, the soft break's "=" included


def _soft_cut(line: bytes) -> int:
    """Where to break a quoted-printable line with a soft break: room for the "=" within 76
    octets, and never inside an ``=XX`` escape."""
    cut = _QP_LINE_MAX - 1
    escape = line.rfind(b"=", cut - 2, cut)
    return escape if escape > 0 else cut


def dot_safe(encoded: bytes) -> bytes:
    """Quoted-printable (CRLF lines, each a line start) with no line that begins with "." and
    none longer than 76 octets.

    A leading dot is written ``=2E`` (RFC 2045 allows any octet encoded), so the message needs
    no SMTP dot-stuffing (RFC 5321 4.5.2) and goes on the wire as it is. A line too long (the
    stdlib encoder can leave 77 octets, and ``=2E`` adds two) is split with a soft break,
    never inside an ``=XX`` escape.
    """
    if len(encoded) <= _QP_LINE_MAX and not encoded.startswith(b".") and b"\n." not in encoded:
        return encoded
    out: list[bytes] = []
    for line in encoded.split(b"\r\n"):
        while True:
            if line.startswith(b"."):
                line = b"=2E" + line[1:]
            if len(line) <= _QP_LINE_MAX:
                break
            cut = _soft_cut(line)
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\r\n".join(out)


def _qp(data: bytes) -> bytes:
    encoded = binascii.b2a_qp(data, istext=True)
    return dot_safe(encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def _soft_end(encoded: bytes) -> bytes:
    """Quoted-printable followed by a soft break, every line still within 76 octets."""
    head, newline, last = encoded.rpartition(b"\r\n")
    if len(last) >= _QP_LINE_MAX:
        cut = _soft_cut(last)
        encoded = dot_safe(head + newline + last[:cut] + SOFT_BREAK + last[cut:])
    return encoded + SOFT_BREAK


# Printable ASCII but "=" (and spaces), short enough for one line with its soft break: such a
# value is its own quoted-printable (RFC 2045 6.7 rules 2 and 3) unless it starts with a dot
# or ends with a space, so most names, addresses and URLs need no encoder.
_QP_PLAIN = re.compile(rb"[ !-<>-~]{1,72}")


def _qp_line(data: bytes) -> bytes:
    # ``data`` has no line break, so the only newlines in the output are soft breaks.
    if _QP_PLAIN.fullmatch(data) and data[0] != 0x2E and data[-1] != 0x20:
        return data + SOFT_BREAK
    encoded = binascii.b2a_qp(data, istext=True)
    if len(encoded) >= _QP_LINE_MAX:
        encoded = encoded.replace(b"=\n", SOFT_BREAK)
    return _soft_end(dot_safe(encoded))


def html_value(value: str) -> bytes:
    """A slot value for the HTML part; ``value`` is already HTML-escaped and has no newline."""
    if not value:
        return b""
    # Character references keep the HTML part ASCII whatever the recipient's name.
    return _qp_line(value.encode("ascii", "xmlcharrefreplace"))


def text_value(value: str) -> bytes:
    """A slot value for the text part; line breaks become spaces."""
    if not value:
        return b""
    if "\r" in value or "\n" in value or "\x00" in value:
        value = _FORBIDDEN.sub(" ", value)
    return _qp_line(value.encode("utf-8"))


@dataclass(frozen=True)
class _Part:
    chunks: tuple[bytes, ...]
    slots: tuple[str, ...]  # slots[i] sits between chunks[i] and chunks[i + 1]

    @classmethod
    def split(cls, source: str, names: list[str]) -> _Part:
        source = source.replace("\r\n", "\n").replace("\n", "\r\n")
        pieces = _SLOT.split(source)
        chunks = [_soft_end(_qp(p.encode("utf-8"))) for p in pieces[0::2]]
        chunks[-1] = chunks[-1][: -len(SOFT_BREAK)]
        return cls(tuple(chunks), tuple(names[int(i)] for i in pieces[1::2]))

    def layout(self, index: int) -> tuple[list[bytes], list[tuple[int, str, int]]]:
        """The chunks with a hole per slot, and (position, slot, part index) for each hole."""
        out = [self.chunks[0]]
        holes = []
        for slot, chunk in zip(self.slots, self.chunks[1:], strict=True):
            holes.append((len(out), slot, index))
            out.extend((b"", chunk))
        return out, holes


@dataclass(frozen=True)
class HeaderSet:
    message_id: str
    to_name: str
    to_address: str
    list_unsubscribe: str  # built from checked parts; may carry a fold (CRLF + space)


def safe_header(value: str) -> str:
    """Refuse CR, LF and NUL in a header value (header injection)."""
    if _FORBIDDEN.search(value):
        raise ValueError("header value contains a line break or NUL")
    return value


def format_to(name: str, address: str) -> bytes:
    """``"Name" <address>``; names with CR/LF/NUL lose them, non-ASCII names use RFC 2047.

    An internationalised domain goes out in its IDNA form (``xn--``). A local part with
    non-ASCII characters is written as raw UTF-8 (RFC 6532 section 3.2: UTF-8 in ``atext``);
    such a message goes only to a relay that offers SMTPUTF8 (``smtp_client``).
    """
    if not address.isascii():
        address = wire_address(address)
    if not _SAFE_ADDRESS.fullmatch(address) and not _SAFE_UTF8_ADDRESS.fullmatch(address):
        raise ValueError(f"address is not a mailbox we can write: {address!r}")
    wire = address.encode("utf-8")
    name = " ".join(_FORBIDDEN.sub(" ", name).split())
    if not name:
        return wire
    if _PLAIN_NAME.fullmatch(name):
        return f'"{name}" <'.encode("ascii") + wire + b">"
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <'.encode("ascii") + wire + b">"
    encoded = Header(name, "utf-8").encode(linesep="\r\n")
    return f"{encoded} <".encode("ascii") + wire + b">"


_date_cache: tuple[int, bytes] = (-1, b"")


def current_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        # RFC 5322 3.3: a numeric zone; "GMT" is obsolete syntax, never to be generated.
        _date_cache = (now, format_datetime(dt.datetime.fromtimestamp(now, dt.UTC)).encode())
    return _date_cache[1]


def _fold(name: str, value: str) -> bytes:
    # The stdlib SMTP policy folds long lines and RFC 2047-encodes non-ASCII once per release.
    header = email.policy.SMTP.header_factory(name, safe_header(value))
    folded: str = header.fold(policy=email.policy.SMTP)
    return folded.encode("ascii")


class MessageTemplate:
    """Static headers and both body parts, encoded once; ``fill`` joins bytes."""

    def __init__(self, static_headers: bytes, body_head: bytes, html: _Part, text: _Part,
                 boundary: str) -> None:  # fmt: skip
        self.boundary = b = boundary.encode("ascii")
        # Positions 1, 3, 5 and 7 take Message-ID, Date, To and List-Unsubscribe; the holes
        # after them take the slot values. ``fill`` copies this list and fills it in.
        skeleton = [b"Message-ID: ", b"", b"\r\nDate: ", b"", b"\r\nTo: ", b"",
                    b"\r\nList-Unsubscribe: ", b"", b"\r\n" + static_headers + body_head
                    + b"--" + b + b'\r\nContent-Type: text/plain; charset="utf-8"\r\n'
                    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"]  # fmt: skip
        holes: list[tuple[int, str, int]] = []
        for part, index, head in (
            (text, 1, b""),
            (
                html,
                0,
                b"\r\n--" + b + b'\r\nContent-Type: text/html; charset="utf-8"\r\n'
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            ),
        ):
            if head:
                skeleton.append(head)
            chunks, part_holes = part.layout(index)
            holes += [(pos + len(skeleton), slot, i) for pos, slot, i in part_holes]
            skeleton += chunks
        skeleton.append(b"\r\n--" + b + b"--\r\n")
        self._skeleton = skeleton
        self._holes = holes

    @classmethod
    def compile(
        cls,
        *,
        markers: SlotMarkers,
        subject: str,
        html: str,
        text: str,
        from_name: str,
        from_address: str,
        reply_to: str,
        list_id: str,
        feedback_id: str,
    ) -> MessageTemplate:
        boundary = f"=_dist_{secrets.token_hex(12)}"
        sender = Address(display_name=" ".join(from_name.split()), addr_spec=from_address)
        list_name, _, list_addr = list_id.rpartition(" <")
        static = b"".join(
            [
                _fold("From", str(sender)),
                _fold("Reply-To", reply_to),
                _fold("Subject", " ".join(subject.split())),
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",  # RFC 8058
                # RFC 2919: the phrase is optional; keep it only when it is plain ASCII.
                b"List-Id: "
                + (
                    f'"{list_name}" <{list_addr}'
                    if _PLAIN_NAME.fullmatch(list_name)
                    else f"<{list_addr}"
                ).encode("ascii")
                + b"\r\n",
                b"Precedence: bulk\r\n",
                f"Feedback-ID: {safe_header(feedback_id)}\r\n".encode("ascii"),
                b"MIME-Version: 1.0\r\n",
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            ]
        )
        return cls(
            static_headers=static,
            body_head=b"This is a multi-part message in MIME format.\r\n",
            html=_Part.split(html, markers.names),
            text=_Part.split(text, markers.names),
            boundary=boundary,
        )

    def fill(self, h: HeaderSet, values: dict[str, tuple[bytes, bytes]]) -> bytes:
        out = self._skeleton.copy()
        out[1] = safe_header(h.message_id).encode("ascii")
        out[3] = current_date()
        out[5] = format_to(h.to_name, h.to_address)
        out[7] = h.list_unsubscribe.encode("ascii")
        for pos, slot, index in self._holes:
            out[pos] = values[slot][index]
        return b"".join(out)


# -- HTML to text for the plain-text part ----------------------------------------------------


class _TextWriter(HTMLParser):
    _BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "tr",
               "ul", "ol", "hr"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.href: list[str | None] = []
        self.lists: list[list[int]] = []  # per open list: [counter] (-1 for bullets)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCKS:
            self.out.append("\n\n")
        if tag in {"ul", "ol"}:
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            marker = "-"
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                marker = f"{self.lists[-1][0]}."
            self.out.append("\n" + "  " * max(0, len(self.lists) - 1) + marker + " ")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))
        elif tag in {"td", "th"}:
            self.out.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"ul", "ol"} and self.lists:
            self.lists.pop()
        if tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith(("http://", "https://", "mailto:")):
                self.out.append(f" <{href.removeprefix('mailto:')}>")
        if tag in self._BLOCKS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text version of sanitised release HTML."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    text = "".join(writer.out)
    # Keep the indentation of nested list items, drop the rest of the stray spaces.
    lines = [re.sub(r"^ +(?![-\d])", "", line.rstrip()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
