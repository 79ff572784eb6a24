"""The two progressive-stage corpora of the demo: NLI text triplets and caption→image pairs.

`pairs/nli.csv` has SimCSE's header (sent0, sent1, hard_neg): anchor, entailment, contradiction;
the contradiction changes one attribute the entailment mentions. `pairs/captions.jsonl` holds
`{"image": relpath, "caption": ...}` with images under `pairs/images/`, paths relative to `pairs/`.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from umarvel_cli.data.demo import texts
from umarvel_cli.data.demo.drawing import write_png
from umarvel_cli.data.demo.world import ATTRIBUTES, Jitter, mutate, random_item

PAIRS_DIR = "pairs"
NLI_FILE = "nli.csv"
CAPTIONS_FILE = "captions.jsonl"
NLI_HEADER = ("sent0", "sent1", "hard_neg")

_ENTAIL = ("There is {np}.", "The picture shows {np}.", "{np} can be seen.")


def nli_rows(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    rows = []
    for _ in range(n):
        item = random_item(rng)
        full = texts.pick_mention(rng, 5)
        anchor = (
            texts.news_caption(item, full, rng)
            if rng.random() < 0.3
            else texts.everyday_caption(item, full, rng)
        )
        short = texts.pick_mention(rng, 2)
        short = tuple(a for a in ATTRIBUTES if a in short and a in full) or ("shape",)
        template = rng.choice(_ENTAIL)
        entail = texts.format_text(template.format(np=texts.noun_phrase(item, short)))
        wrong = mutate(item, rng.choice(short), rng)
        contra = texts.format_text(template.format(np=texts.noun_phrase(wrong, short)))
        rows.append((anchor, entail, contra))
    return rows


def write_corpora(root: Path, seed: int, n_nli: int, n_captions: int) -> dict[str, int]:
    rng = random.Random(f"demo-pairs:{seed}")
    out = root / PAIRS_DIR
    out.mkdir(parents=True, exist_ok=True)
    with open(out / NLI_FILE, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(NLI_HEADER)
        writer.writerows(nli_rows(rng, n_nli))
    seen = set()
    with open(out / CAPTIONS_FILE, "w", encoding="utf-8", newline="\n") as fh:
        for n in range(1, n_captions + 1):
            item = random_item(rng)
            while item in seen:
                item = random_item(rng)
            seen.add(item)
            rel = f"images/cc_{n:06d}.png"
            write_png(out / rel, item, Jitter.draw(rng))
            caption = texts.everyday_caption(item, texts.pick_mention(rng, 4), rng)
            fh.write(json.dumps({"image": rel, "caption": caption}, ensure_ascii=False) + "\n")
    return {"nli": n_nli, "caption": n_captions}
