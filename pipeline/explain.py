"""Tell one document's way through the stages, as text for a terminal: `python -m pipeline explain`.

Pure: a `DocumentTrace` in, lines out. Colour is ANSI escapes, used only when asked (the CLI
asks when stdout is a terminal and NO_COLOR is unset). Lines and sentences are numbered from
0, as in the removal log and the `<doc_id>:<n>` keys of duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

from pipeline.report import describe_removal, extra_columns, survivor_key
from pipeline.runs import DocumentTrace
from pipeline.schema import Stage, Status

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "magenta": "35"}


def use_color(stream: IO[str], choice: str = "auto") -> bool:
    """Return whether to colour output: `always`, `never`, or `auto` (a terminal, and NO_COLOR unset or empty)."""
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _quote(text: str) -> str:
    return '"' + text.strip().replace("\n", "⏎") + '"'


def explain_document(trace: DocumentTrace, color: bool = False, sentence: int | None = None) -> str:
    """Return the account of one document: read, encoding fixes, removed lines, duplicates, final text.

    `sentence`, when asked for by its key, is quoted after the sentence split (or said to be missing).
    """
    paint = _Painter(color)
    m, batch = trace.manifest, trace.batch
    out: list[str] = []

    def stage(name: str, summary: str) -> None:
        out.append(f"{paint(f'{name:<18}', 'bold')} {summary}")

    status = str(m["status"])
    out.append(f"{paint(str(m['source']), 'bold', 'cyan')}  id {paint(str(m.get('id') or '(none)'), 'cyan')}")
    facts = [f"status {paint(status, 'green' if status == Status.KEPT.value else 'yellow')}"]
    facts += [f"{k} {m[k]}" for k in ("format", "url", "encoding", "language") if m.get(k)]
    out.append("  " + " · ".join(facts))
    if m.get("reason"):
        out.append(f"  reason: {m['reason']}")
    out.append("")

    stage("read", f"{m['chars_before']:,} characters" + (f", decoded as {m['encoding']}" if m.get("encoding") else ""))
    if trace.repaired is None:
        out.append(paint(f"  not read any further: {m.get('reason')}", "yellow"))
        if trace.kept_bytes:
            out.append(f"  its bytes are kept at {trace.kept_bytes}")
        return "\n".join(out) + "\n"

    fixes = trace.repaired.get("fixes") or []
    lines = str(trace.repaired["text"]).split("\n")
    stage("repair encoding", f"{_plural(len(fixes), 'line')} fixed by ftfy" if fixes else "no fix needed")
    for fix in fixes:
        number = int(fix["line"])
        out.append(f"  line {number}: {paint(', '.join(fix['steps']), 'yellow')}")
        out.append(f"    - {paint(_quote(fix['before']), 'red')}")
        if number < len(lines):
            out.append(f"    + {paint(_quote(lines[number]), 'green')}")

    boilerplate = [r for r in trace.removals if r.get("stage") != Stage.DEDUP.value]
    duplicates = [r for r in trace.removals if r.get("stage") == Stage.DEDUP.value]
    stage("strip boilerplate", f"{len(boilerplate):,} removed (lines or fragments)")
    for row in boilerplate:
        out.append(f"  {_why(row, paint)}")
        out.append(f"    {paint(_quote(str(row['text'])), 'red')}")

    flat = trace.flat_sentences()
    if trace.sentences is not None:
        language = trace.sentences.get("language")
        score = trace.sentences.get("language_score")
        said = f", language {language}" + (f" ({score:.2f})" if score is not None else "") if language else ""
        paragraphs = _plural(len(trace.sentences["paragraphs"]), "paragraph")
        stage("split sentences", f"{_plural(len(flat), 'sentence')} in {paragraphs}{said}")
    if sentence is not None:
        if sentence < len(flat):
            out.append(f"  sentence {sentence}, as asked: {paint(_quote(flat[sentence]), 'cyan')}")
        else:
            out.append(paint(f"  no sentence {sentence}: the document has {_plural(len(flat), 'sentence')}", "yellow"))

    stage("find duplicates", f"{_plural(len(duplicates), 'sentence')} removed")
    for row in duplicates:
        score = row.get("score")
        said = ", ".join([f"sentence {row['position']}", *([f"Jaccard {score:.2f}"] if score is not None else [])])
        out.append(f"  {paint(str(row['rule']), 'magenta')}: {'; '.join([said, *extra_columns(row)])}")
        out.append(f"    {paint(_quote(str(row['text'])), 'red')}")
        key = str(row.get("duplicate_of"))
        run = row.get("duplicate_of_run")
        survivor = trace.survivors.get(survivor_key(key, run or batch))
        same = " (this document)" if row.get("duplicate_of_doc") == m.get("id") and run in (None, batch) else ""
        where = f"{survivor['source']}{same}" if survivor else f"document {row.get('duplicate_of_doc')}"
        where += f", batch {run}" if run else ""
        out.append(f"    duplicates {paint(key, 'cyan')} in {where}:")
        if survivor is not None:
            out.append(f"    {paint(_quote(str(survivor['text'])), 'green')}")
    if status == Status.DUPLICATE.value:
        out.append(paint(f"  the whole document was dropped: {m.get('reason')}", "yellow"))

    out.append("")
    if trace.document is not None:
        doc = trace.document
        said = ", ".join(
            [
                _plural(len(str(doc["text"])), "character"),
                _plural(doc["n_sentences"], "sentence"),
                _plural(doc["n_words"], "word"),
            ]
        )
        stage("corpus", f"kept: {said}")
        out.append(paint("final text:", "bold"))
        out += [f"  {line}" for line in str(doc["text"]).split("\n")]
    else:
        stage("corpus", paint(f"not in the corpus ({status}): {m.get('reason')}", "yellow"))
    return "\n".join(out) + "\n"


def _why(row: Mapping[str, Any], paint: _Painter) -> str:
    rule, _, rest = describe_removal(row).partition(": ")
    return f"{paint(rule, 'magenta')}: {rest}"
