"""Message bodies by media type: the body itself, or a part of a multipart/mixed body (RFC 2046
§5.1; RFC 5621 for SIP), which is how SIP-I/SIP-T gateways send SDP alongside ISUP.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.sip.fields import MediaType, parse_media_type
from bridge.sip.grammar import SipParseError
from bridge.sip.headers import Headers
from bridge.sip.message import SipMessage, parse_header_block

MULTIPART_MIXED = "multipart/mixed"
_TEXT_PLAIN = MediaType(type="text", subtype="plain")


@dataclass(frozen=True, slots=True)
class BodyPart:
    headers: Headers
    content: bytes

    @property
    def content_type(self) -> MediaType:
        """The part's Content-Type; text/plain when it has none (RFC 2046 §5.1)."""
        value = self.headers.get("Content-Type")
        return _TEXT_PLAIN if value is None else parse_media_type(value)


def split_multipart(body: bytes, boundary: str) -> list[BodyPart]:
    """The parts between the boundary delimiters; preamble and epilogue are dropped."""
    delimiter = b"\r\n--" + boundary.encode("utf-8", "surrogateescape")
    # The first delimiter may open the body, without the CRLF that precedes the others.
    pieces = (b"\r\n" + body).split(delimiter)
    if len(pieces) < 2:
        raise SipParseError("multipart boundary not found")
    parts: list[BodyPart] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        line_end = piece.find(b"\r\n")
        if line_end < 0 or piece[:line_end].strip(b" \t"):
            raise SipParseError("malformed multipart delimiter line")
        piece = piece[line_end + 2 :]
        if piece.startswith(b"\r\n"):
            parts.append(BodyPart(Headers(), piece[2:]))
            continue
        head_end = piece.find(b"\r\n\r\n")
        if head_end < 0:
            raise SipParseError("multipart part without an end of headers")
        parts.append(BodyPart(parse_header_block(piece[:head_end]), piece[head_end + 4 :]))
    return parts


def find_body(message: SipMessage, mime: str) -> bytes | None:
    """The body if it is of type `mime`, else the first part of that type of a multipart/mixed
    body; None when there is none. Raises SipParseError for a malformed multipart body."""
    content_type = message.content_type
    if content_type is None or not message.body:
        return None
    if content_type.mime == mime:
        return message.body
    if content_type.mime != MULTIPART_MIXED:
        return None
    boundary = content_type.param("boundary")
    if not boundary:
        raise SipParseError("multipart body without a boundary")
    for part in split_multipart(message.body, boundary):
        if part.content_type.mime == mime:
            return part.content
    return None
