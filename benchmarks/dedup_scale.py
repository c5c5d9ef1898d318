"""Scale of the embedded dedup index: build and query rates, peak memory, bytes per sentence on disk.

Synthesizes N distinct sentences from the real sentences of the WCXB dev articles' ground truth
(`../shared/eval/`, read in place): each is the first, middle and last third of three random
real sentences with two words replaced by random words of the same text, chosen by a
splitmix64 hash of i, so sentence i is the same in every run. They are signed and
committed to an `EmbeddedIndex` in runs of `--run-size` sentences, as the pipeline's
`WriteCorpus` does (segments merged as a binary counter). Then two query sets go through the
real `find_duplicates` against the index: edited copies (1-3 word edits) of indexed sentences,
which should be found, and fresh synthetic sentences, which should not.

Usage: `python benchmarks/dedup_scale.py --sentences 1000000 [--run-size 1000000] [--queries 20000]
[--folder DIR] [--keep]`. The index is deleted afterwards unless `--keep`.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import DedupConfig  # noqa: E402 - after the path set-up
from pipeline.dedup_index import EmbeddedIndex, collect_survivors, index_params  # noqa: E402
from pipeline.evaluation import load_sentences  # noqa: E402
from pipeline.steps.dedup import DocumentInput, MinHasher, find_duplicates, jaccard  # noqa: E402


def _mix(values: np.ndarray) -> np.ndarray:
    """Return splitmix64 of uint64 values: a fixed, well-spread function of each value."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Synthesizer:
    """Sentence i is a pure function of i: thirds of three real sentences, two words replaced."""

    def __init__(self, real: list[str]) -> None:
        self.words = [s.split() for s in real if len(s.split()) >= 9]
        self.vocabulary = sorted({w for words in self.words for w in words})

    def sentences(self, start: int, count: int) -> list[str]:
        ids = np.arange(start, start + count, dtype=np.uint64) * np.uint64(8)
        h = [_mix(ids + np.uint64(k)) for k in range(1, 6)]
        n, v = np.uint64(len(self.words)), np.uint64(len(self.vocabulary))
        picks = [(x % n).tolist() for x in h[:3]]
        subs = [(x % v).tolist() for x in h[3:5]]
        spots = [(x >> np.uint64(40)).tolist() for x in h[3:5]]
        out = []
        for a, b, c, s1, s2, p1, p2 in zip(*picks, *subs, *spots, strict=True):
            wa, wb, wc = self.words[a], self.words[b], self.words[c]
            words = wa[: len(wa) // 3] + wb[len(wb) // 3 : 2 * len(wb) // 3] + wc[2 * len(wc) // 3 :]
            words[p1 % len(words)] = self.vocabulary[s1]
            words[p2 % len(words)] = self.vocabulary[s2]
            out.append(" ".join(words))
        return out

    def sentence(self, i: int) -> str:
        return self.sentences(i, 1)[0]

    def edited(self, i: int) -> str:
        rng = random.Random(-i - 1)
        words = self.sentence(i).split()
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(words))
            kind = rng.choice(("substitute", "insert", "delete", "punctuate"))
            if kind == "substitute":
                words[at] = self.vocabulary[rng.randrange(len(self.vocabulary))]
            elif kind == "insert":
                words.insert(at, self.vocabulary[rng.randrange(len(self.vocabulary))])
            elif kind == "delete" and len(words) > 5:
                del words[at]
            else:
                words[at] += rng.choice((",", ";", " -", "!"))
        return " ".join(words)


def rss_mb() -> tuple[float, float]:
    """Return (current RSS, peak RSS) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    current = int(fields["VmRSS"].split()[0]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--run-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=None, help="where to build the index (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the index afterwards")
    args = parser.parse_args()

    cfg = DedupConfig()
    hasher = MinHasher(cfg)
    synth = Synthesizer(load_sentences())
    work = args.folder or Path(tempfile.mkdtemp(prefix="dedup-scale-"))
    index = EmbeddedIndex(work / "dedup", index_params(hasher))
    sign_s = commit_s = gen_s = 0.0
    sign_cpu = 0.0
    done = 0
    run = 0
    while done < args.sentences:
        count = min(args.run_size, args.sentences - done)
        start = time.perf_counter()
        gc.disable()  # millions of new tuples would set off full collections again and again
        texts = synth.sentences(done, count)
        sentences = [(f"{done + n:016d}:0", f"{done + n:016d}", text) for n, text in enumerate(texts)]
        del texts
        gc.enable()
        gen_s += time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        survivors = collect_survivors(hasher, sentences)
        sign_s += time.perf_counter() - start
        sign_cpu += time.process_time() - cpu
        del sentences
        start = time.perf_counter()
        index.commit(f"run-{run:04d}", survivors)
        commit_s += time.perf_counter() - start
        del survivors
        done += count
        run += 1
        current, peak = rss_mb()
        print(
            f"  {done:>11,} sentences, {len(index.manifest.segments)} segments, "
            f"sign {sign_s:7.0f}s commit {commit_s:7.0f}s, RSS {current:,.0f} MB (peak {peak:,.0f})",
            flush=True,
        )
    build_peak = rss_mb()[1]
    disk = index.disk_bytes()

    half = args.queries // 2
    rng = random.Random(7)
    edited_ids = [rng.randrange(args.sentences) for _ in range(half)]
    queries = [synth.edited(i) for i in edited_ids] + synth.sentences(args.sentences, half)
    docs = [DocumentInput(f"q{n}", f"Q{n}", tuple(queries[n : n + 20])) for n in range(0, len(queries), 20)]
    reopened = EmbeddedIndex(work / "dedup", index_params(hasher))
    start, cpu = time.perf_counter(), time.process_time()
    verdicts = list(
        find_duplicates(docs, DedupConfig(document_duplicate_fraction=1.0), earlier=reopened.reader("q"), run="q")
    )
    query_s, query_cpu = time.perf_counter() - start, time.process_time() - cpu
    flagged = {int(v.doc_id[1:]) + d.position for v in verdicts for d in v.sentences if d.duplicate_of_run != "q"}
    current, peak = rss_mb()
    truly = {
        n
        for n, i in enumerate(edited_ids)
        if jaccard(hasher.shingles(queries[n]), hasher.shingles(synth.sentence(i))) >= cfg.threshold
    }
    recall_edited = len(flagged & truly) / max(len(truly), 1)
    fresh_flagged = len([n for n in flagged if n >= half])
    print(f"sentences in the index:      {args.sentences:,} in {run} runs, {len(index.manifest.segments)} segments")
    print(f"build (sign + commit):       {args.sentences / (sign_s + commit_s):,.0f} sentences/s wall")
    print(
        f"  signing:                   {args.sentences / sign_s:,.0f} /s wall, {args.sentences / sign_cpu:,.0f} /CPU-s"
    )
    print(f"  commit (write + merges):   {args.sentences / commit_s:,.0f} /s wall ({commit_s:,.0f} s)")
    print(f"  (synthesizing the text:    {gen_s:,.0f} s, not counted)")
    print(
        f"query (find_duplicates):     {len(queries) / query_s:,.0f} sentences/s wall, "
        f"{len(queries) / query_cpu:,.0f} /CPU-s"
    )
    print(f"  edited copies found:       {recall_edited:.4f} of the {len(truly):,} of {half:,} still >= 0.8 Jaccard")
    print(f"  fresh sentences flagged:   {fresh_flagged} of {half:,} (each confirmed by exact Jaccard)")
    print(f"disk:                        {disk / 1e9:.2f} GB, {disk / args.sentences:.0f} bytes/sentence")
    print(
        f"peak RSS:                    build {build_peak:,.0f} MB; "
        f"after queries {peak:,.0f} MB (current {current:,.0f})"
    )
    if not args.keep:
        shutil.rmtree(work / "dedup", ignore_errors=True)
        if args.folder is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
