"""Train the gender classifier on a generated corpus's labelled voices; score it on held-out voices.

    python -m training.train_gender CORPUS_DIR [--out searchengine/attributes/gender_model.json]

CORPUS_DIR is made with `clsp-search corpus generate DIR --n 900 --seed 11 --split-by-voice`: its
voices are split by identity, so clips of 'train' voices fit the model and clips of 'val'/'test'
voices (never seen in training) measure it. Whispered clips are kept: gender must be read from the
timbre there, without F0. The model is a logistic regression on the 256-d unit speaker vector, small
enough to commit as JSON and to evaluate with one dot product.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from searchengine.attributes.speaker import GENDER_MODEL, speaker_embedding


def embed_corpus(corpus: Path) -> tuple[np.ndarray, list[dict]]:
    """Speaker vectors and manifest records of every clip with a gender label."""
    records = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    vecs, kept = [], []
    for rec in records:
        if rec.get("gender") not in ("female", "male"):
            continue
        x, sr = sf.read(str(corpus / rec["path"]), dtype="float32")
        v = speaker_embedding(x, sr)
        if v is not None:
            vecs.append(v)
            kept.append(rec)
    return np.vstack(vecs), kept


def train(corpus: Path, out: Path, c: float = 1.0) -> dict:
    from sklearn.linear_model import LogisticRegression

    x, recs = embed_corpus(corpus)
    y = np.array([r["gender"] == "female" for r in recs], dtype=int)
    split = np.array([r.get("split", "train") for r in recs])
    tr, held = split == "train", split != "train"
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x[tr], y[tr])
    pred = clf.predict(x[held])
    voices = np.array([r["voice"] for r in recs])
    per_voice = {v: float(np.mean(pred[voices[held] == v] == y[held][voices[held] == v])) for v in set(voices[held])}
    model = {
        "weights": [round(float(w), 6) for w in clf.coef_[0]],
        "bias": round(float(clf.intercept_[0]), 6),
        "positive": "female",
        "trained_on": f"{corpus.name}: {int(tr.sum())} clips of {len(set(voices[tr]))} train-split voices",
        "heldout_clips": int(held.sum()),
        "heldout_voices": len(per_voice),
        "heldout_clip_accuracy": round(float(np.mean(pred == y[held])), 4),
        "heldout_voice_accuracy": round(float(np.mean([a >= 0.5 for a in per_voice.values()])), 4),
        "train_accuracy": round(float(clf.score(x[tr], y[tr])), 4),
        "C": c,
    }
    out.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path, default=GENDER_MODEL)
    ap.add_argument("--C", type=float, default=1.0, dest="c")
    args = ap.parse_args(argv)
    model = train(args.corpus, args.out, args.c)
    summary = {k: v for k, v in model.items() if k not in ("weights",)}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
