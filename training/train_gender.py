"""Fit the gender estimate (speaker vector + F0) on voices the project may ship; score it on others.

    python -m training.train_gender --corpus CORPUS_DIR --real POOL_MANIFEST [--heldout DEV_MANIFEST]
                                    [--out searchengine/attributes/gender_model.json]

Training data, both kinds labelled by their sources and never by a model:
* `--corpus`: a generated corpus split by voice (`clsp-search corpus generate DIR --n 900 --seed 0
  --split-by-voice`, the first clips of clsp-mini's own training corpus): clips of its train-split
  voices are fitted on, clips of its val/test voices (never trained on, by clsp-mini either) are
  scored. Whispered clips are kept: there gender must be read from the timbre, without F0.
* `--real` (repeatable): manifests of real labelled speech (`path`, `speaker`, `gender`), such as the
  pool of LibriSpeech readers outside the real-speech development set (`python -m benchmarks.real_speech
  pool`). Synthetic voices alone teach a model what espeak-ng's women sound like, not real ones.

`--heldout` (repeatable) manifests are scored only, after fitting, and must share no speaker with the
training data: the run stops if one does. The regularisation C and the share of weight the real clips
carry are chosen by 5-fold cross-validation grouped by speaker on the training data alone, so the
held-out figures are not tuned on. The model is a logistic regression over
`searchengine.attributes.speaker.gender_features` (the 256-d unit speaker vector, log F0 and an
F0-missing flag), stored as JSON: one dot product at indexing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchengine.attributes.speaker import GENDER_MODEL, female_probability, gender_features

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
REAL_SHARES = (0.25, 0.5, 0.75)
"""Share of the total sample weight that the real clips carry (the rest is the synthetic clips')."""


def measure(path: Path) -> tuple[np.ndarray | None, float | None]:
    """A file's speaker vector and median F0, measured as indexing measures them (per <= 30 s segment,
    the first segment's values; training clips are shorter)."""
    from searchengine.attributes.prosody import measure_prosody
    from searchengine.attributes.speaker import speaker_embedding
    from searchengine.audio import SAMPLE_RATE, load_waveform

    x = load_waveform(str(path))[: 30 * SAMPLE_RATE]
    return speaker_embedding(x), measure_prosody(x)["m_f0_median_hz"]


def read_labelled(manifest: Path, kind: str) -> list[dict[str, Any]]:
    """Rows of a manifest with a female/male label, paths made absolute, with `speaker` and `kind`."""
    rows = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("gender") not in ("female", "male"):
            continue
        speaker = r.get("speaker") or r.get("voice")
        if not speaker:
            raise SystemExit(f"{manifest}: a row without speaker or voice ({r.get('path')}); speakers keep folds apart")
        rows.append({"path": str((manifest.parent / r["path"]).resolve()), "gender": r["gender"],
                     "speaker": f"{kind}:{speaker}", "split": r.get("split", "train"), "kind": kind,
                     "condition": r.get("condition", "synthetic" if kind == "synthetic" else "")})
    return rows


def featurize(rows: list[dict[str, Any]], cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Speaker vectors [N, 256] and F0 [N] (NaN where unvoiced) of rows that embed; cached by path."""
    store: dict[str, Any] = {}
    if cache is not None and cache.is_file():
        store = json.loads(cache.read_text())
    vecs, f0s, kept = [], [], []
    for r in rows:
        if r["path"] not in store:
            v, f0 = measure(Path(r["path"]))
            store[r["path"]] = None if v is None else {"v": [float(x) for x in v], "f0": f0}
        m = store[r["path"]]
        if m is not None:
            vecs.append(m["v"])
            f0s.append(np.nan if m["f0"] is None else m["f0"])
            kept.append(r)
    if cache is not None:
        tmp = cache.with_name(cache.name + ".partial")
        tmp.write_text(json.dumps(store))
        tmp.replace(cache)
    return np.asarray(vecs, np.float64), np.asarray(f0s, np.float64), kept


def _sample_weights(rows: Sequence[dict], real_share: float) -> np.ndarray:
    real = np.array([r["kind"] == "real" for r in rows])
    w = np.ones(len(rows))
    if real.any() and (~real).any():
        w[real] = real_share / real.sum()
        w[~real] = (1 - real_share) / (~real).sum()
        w *= len(rows) / w.sum()
    y = np.array([r["gender"] == "female" for r in rows])
    for cls in (True, False):  # balanced classes within the weighting
        w[y == cls] *= (w.sum() / 2) / w[y == cls].sum()
    return w


def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000).fit(x, y, sample_weight=w)


def choose(x: np.ndarray, y: np.ndarray, rows: Sequence[dict], folds: int = 5) -> tuple[float, float, list[dict]]:
    """C and real share by speaker-grouped cross-validation: the mean of the real and the synthetic
    clips' accuracies on held-out folds (each kind counts, however many clips it has)."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([r["speaker"] for r in rows])
    real = np.array([r["kind"] == "real" for r in rows])
    table = []
    for c in C_GRID:
        for share in REAL_SHARES if real.any() and (~real).any() else (0.5,):
            right = np.zeros(len(rows), bool)
            for tr, te in GroupKFold(folds).split(x, y, groups):
                model = _fit(x[tr], y[tr], _sample_weights([rows[i] for i in tr], share), c)
                right[te] = model.predict(x[te]) == y[te]
            parts = [float(right[m].mean()) for m in (real, ~real) if m.any()]
            table.append({"C": c, "real_share": share, "cv_accuracy": round(float(np.mean(parts)), 4),
                          "cv_real": round(float(right[real].mean()), 4) if real.any() else None,
                          "cv_synthetic": round(float(right[~real].mean()), 4) if (~real).any() else None})
    best = max(table, key=lambda t: (t["cv_accuracy"], -t["C"]))
    return best["C"], best["real_share"], table


def score(model: dict[str, Any], vecs: np.ndarray, f0: np.ndarray, rows: Sequence[dict]) -> dict[str, Any]:
    """Accuracy per clip and per speaker (majority), by condition, and of confident answers."""
    p = female_probability(vecs, f0, model)
    pred = p >= 0.5
    y = np.array([r["gender"] == "female" for r in rows])
    right = pred == y
    conf = np.maximum(p, 1 - p)
    speakers = sorted({r["speaker"] for r in rows})
    per_speaker = [float(np.mean([right[i] for i, r in enumerate(rows) if r["speaker"] == s])) for s in speakers]
    out: dict[str, Any] = {
        "clips": len(rows), "speakers": len(speakers),
        "clip_accuracy": round(float(right.mean()), 4),
        "speaker_accuracy": round(float(np.mean([a > 0.5 for a in per_speaker])), 4),
        "confidence_0.9_share": round(float((conf >= 0.9).mean()), 4),
        "confidence_0.9_accuracy": round(float(right[conf >= 0.9].mean()), 4) if (conf >= 0.9).any() else None,
    }
    conditions = sorted({r["condition"] for r in rows if r["condition"]})
    if len(conditions) > 1:
        out["by_condition"] = {c: round(float(np.mean([right[i] for i, r in enumerate(rows) if r["condition"] == c])), 4)
                               for c in conditions}
    return out


def train(corpus: Path | None, real: Sequence[Path], heldout: Sequence[Path], out: Path,
          cache: Path | None = None) -> dict[str, Any]:
    synthetic = read_labelled(corpus / "manifest.jsonl", "synthetic") if corpus else []
    fit_rows = [r for r in synthetic if r["split"] == "train"] + [r for m in real for r in read_labelled(m, "real")]
    synthetic_held = [r for r in synthetic if r["split"] != "train"]
    held_sets = {m.parent.name: read_labelled(m, "real") for m in heldout}
    train_speakers = {r["speaker"] for r in fit_rows}
    for name, rows in held_sets.items():
        shared = train_speakers & {r["speaker"] for r in rows}
        if shared:
            raise SystemExit(f"{name} shares speakers with the training data ({', '.join(sorted(shared)[:5])}); "
                             "a held-out set must be speaker-disjoint")
    if not fit_rows:
        raise SystemExit("no training clips: give --corpus and/or --real")
    vecs, f0, fit_rows = featurize(fit_rows, cache)
    x = gender_features(vecs, f0)
    y = np.array([r["gender"] == "female" for r in fit_rows], dtype=int)
    c, share, table = choose(x, y, fit_rows)
    clf = _fit(x, y, _sample_weights(fit_rows, share), c)
    n_real = sum(r["kind"] == "real" for r in fit_rows)
    model: dict[str, Any] = {
        "features": "gender_features: 256-d unit speaker vector (Resemblyzer GE2E), log2 F0 (Praat median) centred "
                    "and scaled, F0-missing flag",
        "weights": [round(float(w), 6) for w in clf.coef_[0]],
        "bias": round(float(clf.intercept_[0]), 6),
        "positive": "female",
        "trained_on": {
            "synthetic": f"{corpus.name if corpus else '-'}: {len(fit_rows) - n_real} clips of "
                         f"{len({r['speaker'] for r in fit_rows if r['kind'] == 'synthetic'})} train-split voices",
            "real": f"{n_real} clips of {len({r['speaker'] for r in fit_rows if r['kind'] == 'real'})} speakers "
                    "(LibriSpeech train-clean-100 readers outside the real-speech development set, CC BY 4.0, "
                    "V. Panayotov et al.; gender from SPEAKERS.TXT with the listener correction of LibriTTS-P, CC BY 4.0, M. Kawamura et al.)" if n_real else "none",
        },
        "C": c, "real_share": share, "cross_validation": table,
    }
    model["train_accuracy"] = score(model, vecs, f0, fit_rows)["clip_accuracy"]
    scored = {"synthetic held-out voices": synthetic_held} if synthetic_held else {}
    scored.update(held_sets)
    model["heldout"] = {}
    for name, rows in scored.items():
        hv, hf, kept = featurize(rows, cache)
        model["heldout"][name] = score(model, hv, hf, kept)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, help="generated corpus split by voice (train voices fit, others scored)")
    ap.add_argument("--real", type=Path, action="append", default=[], help="labelled real-speech manifest to fit on")
    ap.add_argument("--heldout", type=Path, action="append", default=[], help="speaker-disjoint manifest to score")
    ap.add_argument("--out", type=Path, default=GENDER_MODEL)
    ap.add_argument("--cache", type=Path, default=None, help="JSON file of measured features, reused across runs")
    args = ap.parse_args(argv)
    model = train(args.corpus, args.real, args.heldout, args.out, args.cache)
    print(json.dumps({k: v for k, v in model.items() if k != "weights"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
