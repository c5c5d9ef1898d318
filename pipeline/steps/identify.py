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
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Final

from charset_normalizer import from_bytes
from charset_normalizer.utils import is_multi_byte_encoding

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
    """Return the encoding of bytes that declare none, judging charset-normalizer's candidates by what they read.

    Its chaos and coherence measures cannot tell ISO-8859-2 from ISO-8859-10 ("Zażółć" read as
    "Zaŋóģæ"), nor windows-1252 from 1250 or 1257 in a short text, and its search skips code pages
    like one that failed. So every common single-byte code page is measured, and a few rare ones;
    of the readings near the calmest, those with the fewest odd characters (`_odd_characters`)
    stay; a common code page beats a rare one; then the calmest, the most coherent, and the order
    of `_COMMON_ENCODINGS`.
    """
    matches = list(from_bytes(sample))
    if not matches:
        return None
    if is_multi_byte_encoding(matches[0].encoding):  # CJK, UTF-16...: charset-normalizer's own measures
        scores = {m.encoding: (m.chaos, m.coherence) for m in matches}
        calm = {e: score for e, score in scores.items() if score[0] - matches[0].chaos < _CHAOS_TIE}
        return _best_scored(calm, ("cp1252",))
    # A match stands for every code page that reads the bytes the same way (`could_be_from_charset`).
    scores = {e: (m.chaos, m.coherence) for m in reversed(matches) for e in m.could_be_from_charset}
    for encoding in (*_COMMON_ENCODINGS, *_RARE_MEASURED):
        if encoding not in scores:
            for match in from_bytes(sample, cp_isolation=[encoding]):
                scores[encoding] = (match.chaos, match.coherence)
    single = {e: score for e, score in scores.items() if not is_multi_byte_encoding(e)}
    lowest = min(chaos for chaos, _ in single.values())
    pool = {e: score for e, score in single.items() if score[0] <= lowest + _CHAOS_WINDOW}
    if len(pool) > 1:
        head = sample[:_JUDGED_BYTES]
        odd = {e: _odd_characters(head, e) for e in pool}
        fewest = min(odd.values())
        pool = {e: score for e, score in pool.items() if odd[e] == fewest}
    pool = {e: score for e, score in pool.items() if e in _COMMON_ENCODINGS} or pool
    lowest = min(chaos for chaos, _ in pool.values())
    return _best_scored({e: score for e, score in pool.items() if score[0] - lowest < _CHAOS_TIE}, _COMMON_ENCODINGS)


def _best_scored(calm: dict[str, tuple[float, float]], preferred: tuple[str, ...]) -> str:
    """Return the most coherent of equally calm readings: of a near tie, the first `preferred`, else the first."""
    top = max(coherence for _, coherence in calm.values())
    tied = [e for e, (_, coherence) in calm.items() if top - coherence <= _COHERENCE_TIE]
    return next((e for e in preferred if e in tied), max(tied, key=lambda e: calm[e][1]))


_CHAOS_TIE: Final = 0.01
_COHERENCE_TIE: Final = 0.02
"""charset-normalizer counts matches this close in chaos and in coherence as tied."""
_CHAOS_WINDOW: Final = 0.1
"""Readings with up to this much more chaos than the calmest are judged by their odd characters.

Accented text reads as chaos to charset-normalizer (Finnish in windows-1252: 0.077) while a rare
code page that turns the accents into symbols can read as calm."""
_JUDGED_BYTES: Final = 65536

_COMMON_ENCODINGS: Final = (
    "cp1252", "cp1251", "iso8859_2", "cp1250", "cp1256", "iso8859_9", "cp1254", "iso8859_15", "cp1255",
    "cp1253", "iso8859_7", "koi8_r", "cp1257", "iso8859_13", "cp874", "iso8859_8", "iso8859_5",
    "iso8859_6", "koi8_u",
)  # fmt: skip
"""Single-byte code pages web pages really used, about the most used first: the order breaks a last tie.

ISO-8859-2 comes before windows-1250 and windows-1253 before ISO-8859-7 because, the other way
round, the misreading shows no odd character (ISO-8859-2's "ž" read as 1250's "ľ", 1253's "Ά" as
"’"). The others (ISO-8859-3/4/10/14/16, windows-1258, Mac, DOS...) win only when no common one
reads the bytes as well."""

_RARE_MEASURED: Final = ("iso8859_4", "iso8859_10", "iso8859_16", "iso8859_3", "iso8859_14")
"""Rare ISO code pages measured too (charset-normalizer's search skips them like the common ones):
Baltic ISO-8859-4 text was read as windows-1256 or ISO-8859-10 when they were not."""

_ALPHABETS: Final = {
    "fr": "àâæçéèêëîïôœùûüÿ", "de": "äöüß", "es": "áéíñóúü", "pt": "áâãàçéêíóôõú", "it": "àèéìíîòóùú",
    "nl": "áàéèêëïóöü", "ca": "àçéèíïòóúü", "sv": "åäöé", "da": "æøåéó", "fi": "äöåšž", "is": "áðéíóúýþæö",
    "et": "äöõüšž", "lv": "āčēģīķļņōŗšūž", "lt": "ąčęėįšųūž", "pl": "ąćęłńóśźż", "cs": "áčďéěíňóřšťúůýž",
    "sk": "áäčďéíĺľňóôŕšťúýž", "hr": "čćđšž", "hu": "áéíóöőúüű", "ro": "ăâîșțşţ", "sq": "çë",
    "tr": "çğıöşüâîû", "az": "çəğıöşü", "vi": "àáâãèéêìíòóôõùúýăđĩũơư",
    "el": "αβγδεζηθικλμνξοπρσςτυφχψωάέήίόύώϊϋΐΰ", "ru": "абвгдежзийклмнопрстуфхцчшщъыьэюяё",
    "uk": "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя", "be": "абвгдеёжзійклмнопрстуўфхцчшыьэюя",
    "bg": "абвгдежзийклмнопрстуфхцчшщъьюя", "sr": "абвгдђежзијклљмнњопрстћуфхцчџш",
    "mk": "абвгдѓежзѕијклљмнњопрстќуфхцчџш", "kk": "абвгдежзийклмнопрстуфхцчшщъыьэюяёәғқңөұүһі",
}  # fmt: skip
"""The lower-case letters beyond ASCII that each language writes (Latin, Greek and Cyrillic scripts)."""
_ALPHABET_SETS: Final = tuple(frozenset(letters) for letters in _ALPHABETS.values())
_SCRIPT_CLASSES: Final = b"LGCX"
_ANY_SCRIPT: Final = bytes.maketrans(_SCRIPT_CLASSES, b"aaaa")


def _odd_characters(sample: bytes, encoding: str) -> int:
    """Return how many odd characters bytes read as in a single-byte code page.

    Odd: letters that the one language holding most of the reading's letters does not write; a
    symbol, fraction or control just before a letter ("ko¹arka", not "8°C"); a letter right after
    a letter of another script.

    >>> text = "Zażółć gęślą jaźń, powiedział minister."
    >>> _odd_characters(text.encode("iso8859_2"), "iso8859_2"), _odd_characters(text.encode("iso8859_2"), "iso8859_10")
    (0, 5)
    """
    letters_of, classes_of = _byte_classes(encoding)
    counts = Counter(sample)
    letters: Counter[str] = Counter()
    for byte, letter in letters_of:
        letters[letter] += counts[byte]
    foreign = min(sum(n for ch, n in letters.items() if ch not in alphabet) for alphabet in _ALPHABET_SETS)
    classes = sample.translate(classes_of)
    misplaced = 0
    if b"o" in classes:
        scripts = classes.translate(_ANY_SCRIPT)
        misplaced = scripts.count(b"oa") - scripts.count(b"doa")
    present = [bytes([script]) for script in _SCRIPT_CLASSES if script in classes]
    mixed = sum(classes.count(a + b) for a in present for b in present if a != b)
    return foreign + misplaced + mixed


@cache
def _byte_classes(encoding: str) -> tuple[tuple[tuple[int, str], ...], bytes]:
    """Return a single-byte code page's letters beyond ASCII (byte, lower-case letter) and a class per byte.

    The classes: a letter or mark of the Latin, Greek, Cyrillic or another script b"L", b"G",
    b"C", b"X"; a symbol, fraction or control beyond ASCII b"o"; a digit b"d"; anything else b".".
    """
    letters: list[tuple[int, str]] = []
    table = bytearray(b"." * 256)
    for byte in range(256):
        try:
            ch = bytes([byte]).decode(encoding)
        except UnicodeDecodeError:
            continue
        if len(ch) != 1:
            continue
        code, category = ord(ch), unicodedata.category(ch)
        if (ch.isalpha() and ch not in "ªº") or category.startswith("M"):
            latin = code < 0x250 or 0x1E00 <= code <= 0x1EFF or 0x300 <= code <= 0x36F
            greek = 0x370 <= code <= 0x3FF or 0x1F00 <= code <= 0x1FFF
            table[byte] = ord("L" if latin else "G" if greek else "C" if 0x400 <= code <= 0x52F else "X")
            if byte >= 0x80 and ch.isalpha() and table[byte] != ord("X") and code >= 0xC0:
                letters.append((byte, unicodedata.normalize("NFC", ch.lower())[:1]))
        elif byte >= 0x80 and (category[0] == "S" or category in ("No", "Cc", "Co", "Cn") or ch in "¶§ªº"):
            table[byte] = ord("o")
        elif ch.isdigit():
            table[byte] = ord("d")
    return tuple(letters), bytes(table)


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
