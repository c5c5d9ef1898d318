"""Dedup quality against exact Jaccard, and signing throughput, beside datasketch's naive loop.

Real sentences: the human-checked main content of the WCXB dev articles (`../shared/eval/`,
read in place, split by sentencex). Run 1 publishes all of them into an embedded index; run 2
brings edited copies of a random sample, with 1-3 realistic edits each (a word substituted by
another word of the corpus, a word inserted or deleted, punctuation added or changed), and is
deduplicated against run 1 through the real `find_duplicates`.

Ground truth: exact Jaccard of the configured shingle sets of each copy and its original
(brute force on those pairs). Recall: copies at or above the threshold that were removed.
Precision: removed copies whose named survivor really is at or above the threshold (exact
Jaccard recomputed from the survivor's text). Baselines in the same run: datasketch
`MinHashLSH` at the threshold, unverified, with word 3-shingles and with character 5-shingles;
and the previous design (LSH at 0.7, every candidate verified). Signing throughput is CPU time
of the same sentences: the bulk signer, datasketch with a new `MinHash()` and `update()` per
shingle, and datasketch with shared permutations and `update_batch`.

Usage: `python benchmarks/dedup_quality.py [--copies 5000] [--naive 3000]`
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import DedupConfig  # noqa: E402 - after the path set-up
from pipeline.dedup_index import EmbeddedIndex, collect_survivors, index_params  # noqa: E402
from pipeline.evaluation import load_sentences  # noqa: E402
from pipeline.steps.dedup import DocumentInput, MinHasher, find_duplicates, jaccard, shingle  # noqa: E402


def edit(sentence: str, rng: random.Random, vocabulary: list[str]) -> tuple[str, int]:
    """Return the sentence with 1-3 realistic edits, and the number of edits."""
    words = sentence.split()
    edits = rng.randint(1, 3)
    for _ in range(edits):
        at = rng.randrange(len(words))
        kind = rng.choice(("substitute", "substitute", "insert", "delete", "punctuate"))
        if kind == "substitute":
            words[at] = rng.choice(vocabulary)
        elif kind == "insert":
            words.insert(at, rng.choice(vocabulary))
        elif kind == "delete" and len(words) > 4:
            del words[at]
        else:
            words[at] = words[at].rstrip(",.;:!?") + rng.choice((",", ";", ":", " -", "!", "."))
    return " ".join(words), edits


def naive_minhash(shingles: set[str], cfg: DedupConfig) -> MinHash:
    sketch = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
    for item in shingles:
        sketch.update(item.encode("utf-8"))
    return sketch


def lsh_baseline(
    originals: list[str], copies: list[str], cfg: DedupConfig, kind: str, size: int, lsh: float, verify: bool
) -> tuple[set[int], set[int]]:
    """Return (flagged copies, flagged copies whose candidate truly is >= threshold) for a datasketch LSH."""
    template = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)

    def sketch(shingles: set[str]) -> MinHash:
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, permutations=template.permutations, scheme=cfg.scheme)
        m.update_batch([s.encode("utf-8") for s in shingles])
        return m

    index = MinHashLSH(threshold=lsh, num_perm=cfg.num_perm)
    sets = [shingle(o, kind, size) for o in originals]
    for n, shingles in enumerate(sets):
        index.insert(n, sketch(shingles))
    flagged, correct = set(), set()
    for n, copy in enumerate(copies):
        own = shingle(copy, kind, size)
        found = index.query(sketch(own))
        scores = [jaccard(own, sets[k]) for k in found]
        if verify:
            scores = [s for s in scores if s >= cfg.threshold]
        if scores:
            flagged.add(n)
            if max(scores) >= cfg.threshold:
                correct.add(n)
    return flagged, correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=5000, help="edited copies in run 2")
    parser.add_argument("--naive", type=int, default=3000, help="sentences for datasketch's naive signing loop")
    args = parser.parse_args()
    cfg = DedupConfig()
    rng = random.Random(6)
    originals = load_sentences()
    vocabulary = sorted({w for s in originals for w in s.split() if w.isalpha()})
    sample = rng.sample(range(len(originals)), args.copies)
    edited = [edit(originals[i], rng, vocabulary) for i in sample]
    copies = [text for text, _ in edited]
    hasher = MinHasher(cfg)
    truth_scores = [
        jaccard(hasher.shingles(c), hasher.shingles(originals[i])) for c, i in zip(copies, sample, strict=True)
    ]
    truly = {n for n, score in enumerate(truth_scores) if score >= cfg.threshold}
    print(
        f"{len(originals):,} real sentences in run 1; {len(copies):,} edited copies in run 2, "
        f"{len(truly):,} of them still >= {cfg.threshold} exact Jaccard ({cfg.shingle})"
    )

    # --- signing throughput (CPU seconds, same sentences) ---
    fresh = MinHasher(cfg)
    cpu = time.process_time()
    signatures = np.concatenate([fresh.signatures(originals[i : i + 4096]) for i in range(0, len(originals), 4096)])
    bulk_rate = len(originals) / (time.process_time() - cpu)
    subset = originals[: args.naive]
    cpu = time.process_time()
    naive = [naive_minhash(hasher.shingles(s), cfg) for s in subset]
    naive_rate = len(subset) / (time.process_time() - cpu)
    cpu = time.process_time()
    shared = [hasher.minhash(hasher.shingles(s)) for s in subset]
    shared_rate = len(subset) / (time.process_time() - cpu)
    identical = all(np.array_equal(m.hashvalues, signatures[n]) for n, m in enumerate(naive)) and all(
        np.array_equal(m.hashvalues, signatures[n]) for n, m in enumerate(shared)
    )
    print("\nsigning, sentences per CPU-second (this run, same sentences, num_perm 128, char5):")
    print(f"  datasketch, new MinHash() + update() per shingle:  {naive_rate:>9,.0f}   1.0x")
    print(f"  datasketch, shared permutations + update_batch:   {shared_rate:>9,.0f}  {shared_rate / naive_rate:4.1f}x")
    print(f"  pipeline MinHasher.signatures (bulk, NumPy):      {bulk_rate:>9,.0f}  {bulk_rate / naive_rate:4.1f}x")
    print(f"  signatures identical to datasketch's: {identical} ({len(subset):,} compared)")

    # --- the pipeline: run 1 published, run 2 deduplicated against it ---
    with tempfile.TemporaryDirectory() as tmp:
        index = EmbeddedIndex(Path(tmp) / "dedup", index_params(hasher))
        docs = [DocumentInput(f"a{n}", f"A{n}", tuple(originals[n : n + 20])) for n in range(0, len(originals), 20)]
        start = time.process_time()
        run1 = list(
            find_duplicates(docs, DedupConfig(document_duplicate_fraction=1.0), earlier=index.reader("r1"), run="r1")
        )
        dropped = {(v.doc_id, d.position) for v in run1 for d in v.sentences}
        survivors = [
            (f"{d.doc_id}:{p}", d.doc_id, text)
            for d in docs
            for p, text in enumerate(d.sentences)
            if (d.doc_id, p) not in dropped and len(text.split()) >= cfg.min_words
        ]
        index.commit("r1", collect_survivors(hasher, survivors))
        run1_cpu = time.process_time() - start
        by_key = {key: text for key, _, text in survivors}
        copy_docs = [DocumentInput(f"b{n}", f"B{n}", tuple(copies[n : n + 20])) for n in range(0, len(copies), 20)]
        start = time.process_time()
        reader = EmbeddedIndex(Path(tmp) / "dedup", index_params(hasher)).reader("r2")
        run2 = list(find_duplicates(copy_docs, DedupConfig(document_duplicate_fraction=1.0), earlier=reader, run="r2"))
        run2_cpu = time.process_time() - start
    flagged, correct = set(), set()
    for verdict in run2:
        base = int(verdict.doc_id[1:])
        for dup in verdict.sentences:
            n = base + dup.position
            flagged.add(n)
            of_doc, _, of_position = dup.duplicate_of.partition(":")
            if dup.duplicate_of_run == "r1":
                target = by_key.get(dup.duplicate_of)
            else:  # another copy of this run
                target = copies[int(of_doc[1:]) + int(of_position)]
            if target is not None and jaccard(hasher.shingles(copies[n]), hasher.shingles(target)) >= cfg.threshold:
                correct.add(n)
    rows = [("pipeline: 21x6 bands, exact Jaccard verification", flagged, correct)]
    for label, kind, size, lsh, verify in (
        ("datasketch MinHashLSH 0.8, word3, unverified", "word", 3, 0.8, False),
        ("datasketch MinHashLSH 0.8, char5, unverified", "char", 5, 0.8, False),
        ("previous: MinHashLSH 0.7, char5, verified", "char", 5, 0.7, True),
    ):
        rows.append((label, *lsh_baseline(originals, copies, cfg, kind, size, lsh, verify)))
    print(f"\nrecall and precision against exact Jaccard >= {cfg.threshold} ({cfg.shingle}) on {len(copies):,} copies:")
    print(f"  {'method':<52} {'recall':>7} {'precision':>9} {'flagged':>8}")
    for label, found, right in rows:
        recall = len(found & truly) / len(truly)
        precision = len(right) / max(len(found), 1)
        print(f"  {label:<52} {recall:7.4f} {precision:9.4f} {len(found):8,}")
    by_edits = Counter(e for n, (_, e) in enumerate(edited) if n in truly)
    hit = Counter(e for n, (_, e) in enumerate(edited) if n in truly and n in flagged)
    print(
        "  pipeline recall by number of edits: "
        + ", ".join(f"{e}: {hit[e] / by_edits[e]:.4f} ({by_edits[e]})" for e in sorted(by_edits))
    )
    print(
        f"\nwhole dedup, CPU: run 1 {len(originals) / run1_cpu:,.0f} sentences/s (within-run, then commit); "
        f"run 2 {len(copies) / run2_cpu:,.0f} sentences/s (against run 1)"
    )


if __name__ == "__main__":
    main()
