"""Decode input bytes to text and give each document a stable id.

Decoding follows what browsers do: a byte-order mark wins, then the charset the server
declared (the HTTP header of a WARC record), then, for HTML, the `<meta charset>` of the page,
then UTF-8, then detection by charset-normalizer. The result says which of these decided.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from charset_normalizer import from_bytes

# Bytes that never occur in text: NUL and most C0 controls. A few in a large file are noise
# to be repaired; many mean the file is binary.
_BINARY_BYTES = bytes(range(0, 9)) + bytes(range(14, 27)) + bytes(range(28, 32))
_BINARY_TABLE = bytes.maketrans(b"", b"")
_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f]")  # the same set, once decoded
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_META_SCAN_BYTES: Final = 4096
_DETECT_BYTES: Final = 1_000_000
# WHATWG encoding-label quirks: browsers read these labels as windows-1252, and a UTF-16 label
# found by an ASCII scan of the bytes cannot be true, so it means UTF-8.
_LABEL_OVERRIDES: Final[dict[str, str]] = {
    "ascii": "cp1252",
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "utf-16-be": "utf-8",
    "utf-16-le": "utf-8",
    "utf-16": "utf-8",
}
_BOMS: Final[tuple[tuple[bytes, str], ...]] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UnreadableInputError(ValueError):
    """Input bytes that are not a text document; the message says why."""


@dataclass(frozen=True)
class DecodedText:
    """Text decoded from bytes, with the codec used and what chose it."""

    text: str
    encoding: str
    how: str

    @property
    def label(self) -> str:
        """Return e.g. 'cp1252 (detected)' for the manifest."""
        return f"{self.encoding} ({self.how})"


def normalise_for_id(text: str) -> str:
    """Return the form of a text that its id is taken over: NFC, whitespace collapsed.

    >>> normalise_for_id("  Caf\\u0065\\u0301   au\\n lait ")
    'Café au lait'
    """
    # `str.split` cuts at the characters `\s` matches (both go by `str.isspace`), in a third of the time.
    return " ".join(unicodedata.normalize("NFC", text).split())


def document_id(text: str, url: str | None = None, capture: str | None = None) -> str:
    """Return 16 hex digits of SHA-256 over the URL when known, else over the normalised text.

    `capture` tells apart two captures of one URL (a WARC-Date, a dump's own record id).

    >>> document_id("Hello  world") == document_id("Hello world\\n")
    True
    >>> document_id("", url="https://example.com/a") != document_id("", "https://example.com/a", "2024-01-01")
    True
    """
    if url:
        key = f"url:{url.strip()}" + (f"\n{capture.strip()}" if capture else "")
    else:
        key = f"text:{normalise_for_id(text)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def codec_for_label(label: str | None) -> str | None:
    """Return the Python codec for a charset label as browsers read it, or None if unknown.

    >>> codec_for_label("ISO-8859-1"), codec_for_label("utf8"), codec_for_label("x-bogus"), codec_for_label("hex")
    ('cp1252', 'utf-8', None, None)
    """
    if not label:
        return None
    try:
        info = codecs.lookup(label.strip().strip("\"'"))
        "a".encode(info.name).decode(info.name)  # base64, hex, rot13, "undefined"... are no charsets
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return _LABEL_OVERRIDES.get(info.name, info.name)


def meta_charset(head: bytes) -> str | None:
    """Return the codec named by a `<meta charset>` or `http-equiv` tag in the first 4 KB.

    >>> meta_charset(b'<head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">')
    'shift_jis'
    """
    match = _META_CHARSET.search(head[:_META_SCAN_BYTES])
    return codec_for_label(match.group(1).decode("ascii")) if match else None


def _binary_fraction(sample: bytes) -> float:
    if not sample:
        return 0.0
    return (len(sample) - len(sample.translate(_BINARY_TABLE, _BINARY_BYTES))) / len(sample)


def _mostly_utf8(data: bytes) -> bool:
    """Whether bytes are UTF-8 with a few broken sequences (a cut character, a stray byte)."""
    decoded = data.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd") - data.count("\ufffd".encode())
    multibyte = sum(1 for ch in decoded if ord(ch) > 0x7F and ch != "\ufffd")
    return bad <= max(2, len(data) // 10_000) and multibyte >= 4 * bad


def _detected_encoding(sample: bytes) -> str | None:
    """Return charset-normalizer's encoding for bytes, a near tie going to the most likely one.

    Its own best breaks a near tie (chaos and coherence alike) by list order, which put cp1250
    before cp1252 for English text with a few accented letters ("à" read as "ŕ"). Among the
    tied, the most coherent wins, and cp1252, by far the web's most common legacy encoding, when tied.
    """
    matches = list(from_bytes(sample))
    if not matches:
        return None
    calm = [m for m in matches if m.chaos - matches[0].chaos < _CHAOS_TIE]
    top = max(m.coherence for m in calm)
    tied = [m for m in calm if top - m.coherence <= _COHERENCE_TIE]
    chosen = next((m for m in tied if m.encoding == "cp1252"), max(tied, key=lambda m: m.coherence))
    return str(chosen.encoding)


_CHAOS_TIE: Final = 0.01
_COHERENCE_TIE: Final = 0.02
"""charset-normalizer counts matches this close in chaos and in coherence as tied."""


def decode_document(data: bytes, *, declared: str | None = None, markup: bool = False) -> DecodedText:
    """Decode a document's bytes; raise UnreadableInputError for empty, binary or undecodable ones.

    `declared` is the charset from a transport header; `markup` lets `<meta charset>` speak.

    >>> decoded = decode_document("Grüße aus Köln".encode("cp1252") * 20)
    >>> decoded.text[:14], decoded.how
    ('Grüße aus Köln', 'detected')
    >>> decode_document(b'<meta charset="iso-8859-1"><p>caf\\xe9', markup=True).text[-4:]
    'café'
    >>> decode_document(b"\\xff\\xfeh\\x00i\\x00").label
    'utf-16 (byte-order mark)'
    """
    decoded = _decode(data, declared, markup)
    if not decoded.text.strip():
        raise UnreadableInputError(f"no text: only whitespace once decoded as {decoded.encoding}")
    sample = decoded.text[:65536]
    if len(_CONTROL_CHARS.findall(sample)) > 0.01 * len(sample):
        raise UnreadableInputError(f"binary content (control characters once decoded as {decoded.encoding}), not text")
    return decoded


def _decode(data: bytes, declared: str | None, markup: bool) -> DecodedText:
    """Decode by byte-order mark, declaration, UTF-8, then detection (see `decode_document`)."""
    if not data.strip():
        raise UnreadableInputError("empty file" if not data else "only whitespace")
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data.decode(codec), codec.removesuffix("-sig"), "byte-order mark")
            except UnicodeError as error:
                raise UnreadableInputError(f"invalid {codec} after its byte-order mark: {error}") from None
    if _binary_fraction(data[:65536]) > 0.01:
        raise UnreadableInputError("binary content (control bytes), not text")
    candidates: list[tuple[str | None, str]] = [(codec_for_label(declared), "declared by the server")]
    if markup:
        candidates.append((meta_charset(data), "declared by <meta>"))
    for label, how in candidates:
        if label is not None:
            try:
                return DecodedText(data.decode(label), label, how)
            except (UnicodeError, LookupError):
                continue  # a wrong declaration is common; the bytes decide
    try:
        return DecodedText(data.decode("utf-8"), "utf-8", "valid")
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):
        return DecodedText(data.decode("utf-8", errors="replace"), "utf-8", "invalid bytes replaced")
    detected = _detected_encoding(data[:_DETECT_BYTES])
    if detected is None:
        raise UnreadableInputError("not valid UTF-8, and no text encoding fits the bytes")
    try:
        return DecodedText(data.decode(detected), detected, "detected")
    except (UnicodeError, LookupError) as error:
        raise UnreadableInputError(f"not valid UTF-8; detected {detected}, but: {error}") from None
