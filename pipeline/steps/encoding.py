"""Repair text encoding: mojibake, HTML entities, control characters, Unicode normal form."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ftfy

from pipeline.config import EncodingConfig


@dataclass(frozen=True)
class LineFix:
    """The ftfy steps that changed one line, as `action:parameter` strings."""

    line: int
    steps: tuple[str, ...]
    before: str


@dataclass(frozen=True)
class RepairedText:
    """Repaired text and the fixes that changed it, line by line."""

    text: str
    fixes: tuple[LineFix, ...]


def ftfy_config(cfg: EncodingConfig) -> ftfy.TextFixerConfig:
    """Return the ftfy configuration for an encoding section."""
    return ftfy.TextFixerConfig(
        unescape_html="auto" if cfg.unescape_html else False,
        fix_encoding=cfg.fix_encoding,
        remove_control_chars=cfg.remove_control_chars,
        fix_latin_ligatures=cfg.fix_latin_ligatures,
        fix_character_width=cfg.fix_character_width,
        uncurl_quotes=cfg.uncurl_quotes,
        normalization=None if cfg.normalization == "none" else cfg.normalization,
        explain=True,
    )


def repair_encoding(text: str, cfg: EncodingConfig) -> RepairedText:
    """Fix each line with ftfy, recording which fixes applied where.

    Lines are fixed one at a time, as `ftfy.fix_text` does, so one bad line cannot sway the
    repair of the rest. Line breaks are normalised to `\\n`, and a repaired line stays one line.

    >>> result = repair_encoding("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", EncodingConfig())
    >>> result.text
    'The Mona Lisa doesn’t have eyebrows.'
    >>> result.fixes[0].steps[:2]
    ('encode:sloppy-windows-1252', 'decode:utf-8')
    """
    config = ftfy_config(cfg)
    out: list[str] = []
    fixes: list[LineFix] = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        if line.isascii() and "&" not in line and line.isprintable():
            out.append(line)  # nothing ftfy could change; skip its cost
            continue
        fixed, steps = fix_line(line, config)
        if "\n" in fixed:  # an unescaped "&#10;": a line stays one line, so per-line context stays aligned
            fixed = fixed.replace("\n", " ")
        if fixed != line:
            fixes.append(LineFix(number, steps, line))
        out.append(fixed)
    return RepairedText("\n".join(out), tuple(fixes))


@lru_cache(maxsize=4096)
def fix_line(line: str, config: ftfy.TextFixerConfig) -> tuple[str, tuple[str, ...]]:
    """Return a line fixed by ftfy and the steps that changed it (none when it is unchanged).

    A pure function, remembered for the 4,096 lines last asked for: a site's pages repeat
    their menus, footers and notices, so most lines that need ftfy's full pass recur within a
    shard, and each costs ftfy's mojibake search over the whole line.

    >>> fix_line("caf\u00c3\u00a9 &amp; bar", ftfy_config(EncodingConfig()))
    ('café & bar', ('apply:unescape_html', 'encode:latin-1', 'decode:utf-8'))
    """
    fixed, explanation = ftfy.fix_and_explain(line, config)
    if fixed == line:
        return line, ()
    return fixed, tuple(f"{step.action}:{step.parameter}" for step in explanation or ())
