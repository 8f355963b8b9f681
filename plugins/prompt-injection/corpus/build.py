"""Build attacks.jsonl and benign.jsonl (see README.md for how to re-run).

    python3 build.py WHEEL_DIR

Deterministic: the same wheels give byte-identical files. Exact duplicates
(after whitespace/case folding) are dropped; near-duplicates (Jaccard >= 0.5
on word 4-gram shingles, common among copy-edited DAN prompts) are joined
into one group; whole groups go to `train` or `test` by a hash of the group
id, so no template or near-copy is on both sides of the split.
"""

import hashlib
import json
import random
import re
import sys
from pathlib import Path

import own
import public

TEST_SHARE = 0.3
HERE = Path(__file__).resolve().parent


def key(text):
    return re.sub(r"\s+", " ", text.strip().lower())


def shingles(text):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i:i + 4]) for i in range(max(1, len(words) - 3))}


def near_duplicate_groups(items, prefix):
    """Union-find over Jaccard >= 0.5; returns a group id per item."""
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sets = [shingles(x["text"]) for x in items]
    # Inverted index on shingles keeps this from being all-pairs.
    index = {}
    for i, s in enumerate(sets):
        for sh in s:
            index.setdefault(sh, []).append(i)
    for i, s in enumerate(sets):
        counts = {}
        for sh in s:
            postings = index[sh]
            if len(postings) > 200:
                continue
            for j in postings:
                if j > i:
                    counts[j] = counts.get(j, 0) + 1
        for j, inter in counts.items():
            if inter / (len(s) + len(sets[j]) - inter) >= 0.5:
                parent[find(i)] = find(j)
    # Name each group after its smallest member, not its union-find root:
    # the root depends on set iteration order, which Python randomises per
    # process (PYTHONHASHSEED), and the split must not.
    names = {}
    for i, x in enumerate(items):
        digest = hashlib.sha256(key(x["text"]).encode()).hexdigest()[:16]
        root = find(i)
        names[root] = min(names.get(root, digest), digest)
    return [f"{prefix}:{names[find(i)]}" for i in range(len(items))]


def split_of(group):
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16)
    return "test" if h / 0xFFFFFFFF < TEST_SHARE else "train"


def main():
    wheels = public.Wheels(sys.argv[1])
    items = []
    for reader in public.ATTACKS + public.BENIGN:
        items.extend(reader(wheels))
    rng = random.Random(10)
    for label, gen in ((1, own.attacks), (0, own.benign)):
        for text, cat, group in gen(rng):
            items.append(public.item(text, label, cat, "own (corpus/own.py)", group))

    seen, unique = set(), []
    for x in items:
        k = key(x["text"])
        if k and k not in seen:
            seen.add(k)
            unique.append(x)
    ungrouped = [x for x in unique if x["group"] is None]
    for x, g in zip(ungrouped, near_duplicate_groups(ungrouped, "near")):
        x["group"] = g

    for label, name in ((1, "attacks.jsonl"), (0, "benign.jsonl")):
        rows = [x for x in unique if x["label"] == label]
        with open(HERE / name, "w", encoding="utf-8") as f:
            for i, x in enumerate(rows):
                row = {
                    "id": f"{name.split('.')[0]}-{i:04d}",
                    "split": split_of(x["group"]),
                    "category": x["category"],
                    "group": x["group"],
                    "source": x["source"],
                    "text": x["text"],
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        counts = {}
        for x in rows:
            c = counts.setdefault(x["category"], [0, 0])
            c[split_of(x["group"]) == "test"] += 1
        print(name, len(rows), {k: f"{a}/{b}" for k, (a, b) in sorted(counts.items())})


if __name__ == "__main__":
    main()
