"""The config schema and configs/default.toml agree; bad configs are refused by key."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, PipelineConfig, load_config, parse_config, render_default_toml
from tests.conftest import REPO


def test_default_toml_is_the_schema_defaults_with_every_key_commented() -> None:
    path = REPO / "configs" / "default.toml"
    assert path.read_text(encoding="utf-8") == render_default_toml(), (
        "run: python -m pipeline config > configs/default.toml"
    )
    assert load_config(path) == PipelineConfig()
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), f"no comment above: {line}"


def test_fingerprints_follow_only_their_sections() -> None:
    base = PipelineConfig()
    changed = parse_config({"dedup": {"threshold": 0.9}})
    assert base.fingerprint("input", "boilerplate") == changed.fingerprint("input", "boilerplate")
    assert base.fingerprint("dedup") != changed.fingerprint("dedup")
    assert base.canonical_json() != changed.canonical_json()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dedup": {"num_perm": 8}}, "dedup.num_perm"),
        ({"dedup": {"shingle": "char"}}, "dedup.shingle"),
        ({"sentences": {"language": "English!"}}, "sentences.language"),
        ({"encoding": {"normalization": "NFD"}}, "encoding.normalization"),
        ({"corpus": {"name": "a\nb"}}, "corpus.name"),
        ({"nonsense": {}}, "nonsense: unknown key"),
        ({"input": {"files_per_shard": "many"}}, "input.files_per_shard"),
        # No quiet conversions: a quoted number, a bool for a number (true would be 1 byte), a word for a bool.
        ({"input": {"files_per_shard": "64"}}, "input.files_per_shard"),
        ({"input": {"max_document_bytes": True}}, "input.max_document_bytes"),
        ({"input": {"max_document_bytes": 2**63 - 1}}, "input.max_document_bytes"),  # overflowed the reader
        ({"boilerplate": {"enabled": "yes"}}, "boilerplate.enabled"),
        ({"dedup": {"threshold": "0.8"}}, "dedup.threshold"),
        ({"html": {"main_content": "lines"}, "boilerplate": {"rules": {"line_classifier": False}}}, "main_content"),
        ({"html": {"main_content": "readability"}}, "html.main_content"),
    ],
)
def test_bad_values_are_refused_with_the_key(data: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(data)
