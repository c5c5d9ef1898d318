"""The corpus, manifest and removal-log schemas: the one source of truth for their fields.

The Parquet writer builds its Arrow schemas from these tables and the dataset card describes
the fields from the same text, so the two never drift apart. Bump SCHEMA_VERSION when a field
is added, removed or changes meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

SCHEMA_VERSION = "1.2"


class Status(StrEnum):
    """What became of one input document; every manifest row has exactly one."""

    KEPT = "kept"
    QUARANTINED = "quarantined"
    EMPTY_AFTER_CLEANING = "empty-after-cleaning"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    """A unit of an input file that is not a page: a WARC request record, an image, an HTTP 404."""


class Stage(StrEnum):
    """Stages that remove text, as named in the removal log."""

    ENCODING = "repair_encoding"
    BOILERPLATE = "strip_boilerplate"
    DEDUP = "find_duplicates"


@dataclass(frozen=True)
class FieldSpec:
    """One column: name, Arrow type, whether it may be null, and what it means."""

    name: str
    type: pa.DataType
    nullable: bool
    description: str

    def arrow(self) -> pa.Field:
        """Return the Arrow field, with the description kept in its metadata."""
        return pa.field(self.name, self.type, nullable=self.nullable, metadata={"description": self.description})


DOCUMENT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "id",
        pa.string(),
        False,
        "Stable document id: 16 hex digits of SHA-256 over the URL when one is known, "
        "else over the normalised raw text (NFC, whitespace collapsed).",
    ),
    FieldSpec(
        "source",
        pa.string(),
        False,
        "Input file path relative to the input root, with '#N' for the N-th WARC record or "
        "JSON line of a multi-document file.",
    ),
    FieldSpec("url", pa.string(), True, "The page URL when the input names one."),
    FieldSpec(
        "format",
        pa.string(),
        False,
        "What the input was: text | html (a file) | warc (a WARC record) | jsonl (a JSON line); "
        "HTML content is marked by `html` or by the WARC/JSONL container.",
    ),
    FieldSpec(
        "title",
        pa.string(),
        True,
        "The headline: from the input's metadata, else the first kept line when it reads "
        "like a headline (short, no final full stop).",
    ),
    FieldSpec("author", pa.string(), True, "Author named by the page's markup (HTML input only)."),
    FieldSpec(
        "date",
        pa.string(),
        True,
        "Publication date: from the page's markup (YYYY-MM-DD) or the JSON Lines date field, as given.",
    ),
    FieldSpec("fetched", pa.string(), True, "When the page was fetched: the WARC-Date of its record."),
    FieldSpec("site_name", pa.string(), True, "Site name from the page's markup (HTML input only)."),
    FieldSpec("source_id", pa.string(), True, "The input's own id: WARC-Record-ID, or the JSON Lines id field."),
    FieldSpec(
        "language",
        pa.string(),
        True,
        "Language of the cleaned text (ISO 639 code as fastText lid.176 names it); null when unidentified.",
    ),
    FieldSpec("language_score", pa.float32(), True, "The identifier's probability for `language`."),
    FieldSpec(
        "text",
        pa.string(),
        False,
        "The cleaned text: one paragraph per line, boilerplate and duplicate sentences removed.",
    ),
    FieldSpec("n_sentences", pa.int32(), False, "Sentences in `text`."),
    FieldSpec(
        "n_words", pa.int32(), False, "Words in `text`: whitespace-separated tokens, each Han or kana character one."
    ),
    FieldSpec("pipeline_version", pa.string(), False, "Version of the pipeline that wrote the row."),
    FieldSpec(
        "config_hash", pa.string(), False, "Hash of the canonical JSON of the config used (see the dataset card)."
    ),
)

MANIFEST_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("id", pa.string(), False, "Document id (as in `data/`); empty for an unreadable input."),
    FieldSpec(
        "source",
        pa.string(),
        False,
        "Input path relative to the input root; '#N' for the N-th WARC record or JSON line of a file.",
    ),
    FieldSpec("url", pa.string(), True, "The page URL when the input names one."),
    FieldSpec("format", pa.string(), False, "What the input file is: text | html | warc | jsonl."),
    FieldSpec("status", pa.string(), False, " | ".join(s.value for s in Status) + "."),
    FieldSpec("reason", pa.string(), True, "Why the document was not kept (null when kept)."),
    FieldSpec(
        "encoding",
        pa.string(),
        True,
        "How the bytes were decoded, e.g. 'utf-8 (valid)', 'cp1252 (declared by the server)', "
        "'shift_jis (detected)'; null for JSON Lines (UTF-8 by definition) and unread inputs.",
    ),
    FieldSpec("language", pa.string(), True, "Identified language (as in `data/`)."),
    FieldSpec("duplicate_of", pa.string(), True, "For status 'duplicate': id of the document it duplicates."),
    FieldSpec(
        "duplicate_of_run",
        pa.string(),
        True,
        "For status 'duplicate': the batch that published that document (this row's own batch if it is in the "
        "same run).",
    ),
    FieldSpec("chars_before", pa.int64(), False, "Characters of the document as read."),
    FieldSpec("chars_after", pa.int64(), False, "Characters of the cleaned text (0 unless kept)."),
)

REMOVAL_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("doc_id", pa.string(), False, "Document the text was removed from."),
    FieldSpec("source", pa.string(), False, "That document's source."),
    FieldSpec("stage", pa.string(), False, "Stage that removed it: " + ", ".join(s.value for s in Stage) + "."),
    FieldSpec(
        "rule",
        pa.string(),
        False,
        "Rule that fired: a boilerplate rule name, an encoding fix, or "
        "'near_duplicate' / 'exact_duplicate' for sentences.",
    ),
    FieldSpec("text", pa.string(), False, "The removed text, as it stood when removed."),
    FieldSpec(
        "position",
        pa.int32(),
        False,
        "Line number (boilerplate) or sentence number (duplicates) in that stage's input, from 0.",
    ),
    FieldSpec(
        "score",
        pa.float64(),
        True,
        "Jaccard similarity for duplicates; boilerplate probability for 'line_classifier'; documents of "
        "the site holding the line for 'site_repeated' (counted up to 8); null for other rules.",
    ),
    FieldSpec(
        "duplicate_of", pa.string(), True, "For duplicates: id of the surviving sentence, '<doc_id>:<sentence number>'."
    ),
    FieldSpec("duplicate_of_doc", pa.string(), True, "For duplicates: id of the surviving sentence's document."),
    FieldSpec(
        "duplicate_of_run",
        pa.string(),
        True,
        "For duplicates: the batch that published the surviving sentence (this row's own batch when the "
        "survivor is in the same run).",
    ),
)


def arrow_schema(fields: tuple[FieldSpec, ...]) -> pa.Schema:
    """Return the Arrow schema of a field table, with the schema version in its metadata."""
    return pa.schema([spec.arrow() for spec in fields], metadata={"schema_version": SCHEMA_VERSION})


DOCUMENT_SCHEMA = arrow_schema(DOCUMENT_FIELDS)
MANIFEST_SCHEMA = arrow_schema(MANIFEST_FIELDS)
REMOVAL_SCHEMA = arrow_schema(REMOVAL_FIELDS)
