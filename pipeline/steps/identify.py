"""Decode input bytes and give each document a stable id."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from charset_normalizer import from_bytes

_WHITESPACE = re.compile(r"\s+")
# Bytes that never occur in text: NUL and most C0 controls. A few in a large file are noise
# to be repaired; many mean the file is binary.
_BINARY_BYTES = bytes(range(0, 9)) + bytes(range(14, 27)) + bytes(range(28, 32))
_BINARY_TABLE = bytes.maketrans(b"", b"")


class UnreadableInputError(ValueError):
    """Input bytes that are not a text document; the message says why."""


def normalise_for_id(text: str) -> str:
    """Return the form of a text that its id is taken over: NFC, whitespace collapsed.

    >>> normalise_for_id("  Caf\\u0065\\u0301   au\\n lait ")
    'Café au lait'
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def document_id(text: str, url: str | None = None) -> str:
    """Return 16 hex digits of SHA-256 over the URL when known, else over the normalised text.

    >>> document_id("Hello  world") == document_id("Hello world\\n")
    True
    >>> len(document_id("", url="https://example.com/a"))
    16
    """
    key = f"url:{url.strip()}" if url else f"text:{normalise_for_id(text)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _binary_fraction(sample: bytes) -> float:
    if not sample:
        return 0.0
    return (len(sample) - len(sample.translate(_BINARY_TABLE, _BINARY_BYTES))) / len(sample)


def decode_text(data: bytes) -> str:
    """Decode a plain-text document: UTF-8 (with or without BOM), else the detected charset.

    Raises UnreadableInputError for empty, binary or undecodable bytes.

    >>> decode_text("Grüße".encode("cp1252") * 20)[:5]
    'Grüße'
    """
    if not data.strip():
        raise UnreadableInputError("empty file" if not data else "file holds only whitespace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise UnreadableInputError(f"invalid UTF-16 after a byte-order mark: {error}") from None
    if _binary_fraction(data[:65536]) > 0.01:
        raise UnreadableInputError("binary content (control bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:1_000_000]).best()
    if best is None or best.encoding is None:
        raise UnreadableInputError("not valid UTF-8 and no text encoding could be detected")
    try:
        return data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise UnreadableInputError(f"not valid UTF-8; detected {best.encoding} but: {error}") from None
