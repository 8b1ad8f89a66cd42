"""GPU indexing throughput: audio seconds per wall second, and how busy the GPU is while indexing.

Two speech towers are fed by the real pipeline (`indexer.pipeline.run_index`: decoding worker
processes reading generated WAV files, length-bucketed batches, collection commits):

* clsp-mini, the bundled model;
* a CLSP-sized speech tower: a `transformers` Wav2Vec2 encoder with random weights and about 600 M
  parameters (the released CLSP's Zipformer speech encoder is about 600 M of its 724 M), in bf16,
  masked-mean-pooled and projected to 512-d. Random weights cost the same compute as trained ones,
  and no checkpoint can be downloaded here. Captions go through clsp-mini's text tower.

Both go through the indexer's device path (searchengine.model.encoder): length buckets featurized,
collated and pinned in a prefetch thread, copied with `non_blocking=True`, embedded under bf16
autocast, while decode workers fill a bounded queue one chunk ahead.

While each run goes, GPU utilisation is sampled (pynvml, else `nvidia-smi`) ten times a second; the
busy share is the mean utilisation over the run. Below 80 % the GPU is starved: compare with the
"speech embedding alone" row, which feeds it pre-decoded batches, and read the embedding loop's input
wait (for decoded files, for featurized batches), which says what starved it.

On a machine without CUDA the script says so and exits 0 without measuring; `--cpu` runs it there
anyway (the clsp-mini half; `--big-layers 2` adds a tiny version of the big tower) to exercise it.

    python -m benchmarks gpu_index
    python -m benchmarks.bench_gpu_index --clips 400 --repeat 10
    python -m benchmarks.bench_gpu_index --cpu --clips 8      # a smoke test without a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.model.encoder import Encoder, host_batch, to_device


class GpuSampler:
    """Samples GPU utilisation (percent of time a kernel ran) in a background thread."""

    def __init__(self, device_index: int = 0, period: float = 0.1) -> None:
        self.period = period
        self.samples: list[float] = []
        self.memory: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = "none"
        self._nvml: Any = None
        self._handle: Any = None
        self._index = device_index
        try:
            import pynvml  # from nvidia-ml-py

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self.source = "pynvml"
        except Exception:  # noqa: BLE001 - no NVML binding or no driver: try the CLI
            if shutil.which("nvidia-smi"):
                self.source = "nvidia-smi"

    def _read(self) -> tuple[float, float] | None:
        if self._nvml is not None:
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            return float(util.gpu), float(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used) / 2**30
        if self.source == "nvidia-smi":
            out = subprocess.run(["nvidia-smi", f"--id={self._index}", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
            util, mem = out.strip().split(",")[:2]
            return float(util), float(mem) / 1024
        return None

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            reading = self._read()
            if reading:
                self.samples.append(reading[0])
                self.memory.append(reading[1])

    def __enter__(self) -> GpuSampler:
        if self.source != "none":
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "no GPU samples" if self.source == "none" else f"no samples ({self.source})"
        s = np.asarray(self.samples)
        return (f"busy {s.mean():.0f} % (median {np.median(s):.0f} %, {np.mean(s >= 80) * 100:.0f} % of samples >= 80 %, "
                f"{len(s)} samples via {self.source}, peak memory {max(self.memory):.1f} GiB)")


class BigSpeechTowerEncoder(Encoder):
    """A CLSP-sized speech tower (random Wav2Vec2 encoder) plus clsp-mini's text side.

    It exists to measure whether the pipeline can keep a big model busy; its vectors mean nothing."""

    def __init__(self, text_encoder: Encoder, device: torch.device, layers: int = 30, hidden: int = 1280) -> None:
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        config = Wav2Vec2Config(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden, do_stable_layer_norm=True, feat_extract_norm="layer",
            conv_bias=True, mask_time_prob=0.0, layerdrop=0.0,
        )
        torch.manual_seed(0)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.tower = Wav2Vec2Model(config).to(device=device, dtype=dtype).eval()
        try:
            self.tower.set_attn_implementation("sdpa")
        except Exception:  # noqa: BLE001 - older transformers pick sdpa themselves where supported
            pass
        self.proj = torch.nn.Linear(hidden, 512).to(device=device, dtype=dtype)
        self.text_encoder = text_encoder
        self.parameters = sum(p.numel() for p in self.tower.parameters()) + sum(p.numel() for p in self.proj.parameters())
        self.name = f"wav2vec2-random-{self.parameters / 1e6:.0f}M"
        self.model_id = f"{self.name}@bench"
        self.dim = 512
        self.device = device
        self.dtype = dtype

    def _prepare_speech_batch(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Padded batch, mask and lengths, pinned when bound for CUDA (runs in the prefetch thread)."""
        lengths = torch.tensor([len(w) for w in waveforms])
        batch = torch.zeros(len(waveforms), int(lengths.max()))
        for i, w in enumerate(waveforms):
            batch[i, : len(w)] = torch.from_numpy(np.asarray(w, np.float32))
        mask = (torch.arange(batch.shape[1])[None, :] < lengths[:, None]).long()
        return host_batch({"audio": batch, "mask": mask, "lengths": lengths}, self.device)

    def _embed_speech_batch(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        lengths = prepared["lengths"]
        on_device = to_device(prepared, self.device)
        hidden = self.tower(on_device["audio"].to(self.dtype), attention_mask=on_device["mask"]).last_hidden_state
        frames = self.tower._get_feat_extract_output_lengths(lengths).to(self.device)
        keep = (torch.arange(hidden.shape[1], device=self.device)[None, :] < frames[:, None]).to(hidden.dtype)
        pooled = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)  # masked mean
        return self.proj(pooled)

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        return self._embed_speech_batch(self._prepare_speech_batch(waveforms))

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder._text_batch(texts)


def load_mini(device: torch.device) -> Encoder:
    """The bundled clsp-mini, or, before its weights exist, the same architecture untrained: the
    compute, and so the throughput, are the same; the model id then says so."""
    from searchengine.model import CheckpointError, ClspEncoder, get_model_config, load_model

    try:
        return load_model("clsp-mini", device=device)
    except CheckpointError:
        from searchengine.model.clsp import CLSP

        print("clsp-mini weights not bundled here: measuring its architecture with untrained weights", flush=True)
        return ClspEncoder(CLSP(get_model_config("clsp-mini")), "clsp-mini-untrained", "bench", device)


def make_corpus(root: Path, clips: int, repeat: int) -> tuple[Path, float]:
    """Generate `clips` real WAV files and a manifest listing each `repeat` times under distinct ids,
    so a large run costs little generation time but every entry is still decoded from its file."""
    corpus = root / "corpus"
    subprocess.run([sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n", str(clips),
                    "--seed", "21", "--quiet"], check=True, capture_output=True)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    manifest = root / "manifest.jsonl"
    with open(manifest, "w") as f:
        for r in range(repeat):
            for row in rows:
                path = Path(row["path"])
                f.write(json.dumps({**row, "id": f"{row.get('id', path.stem)}-r{r}",
                                    "path": str(path if path.is_absolute() else corpus / path)}) + "\n")
    return manifest, len(rows) * repeat


def run_one(label: str, encoder: Encoder, manifest: Path, root: Path, workers: int, batch_seconds: float,
            attributes: bool = False) -> list[str]:
    from indexer.decode import process
    from indexer.pipeline import run_index
    from searchengine.manifest import read_source

    collection = root / f"coll-{label}"
    shutil.rmtree(collection, ignore_errors=True)
    items = read_source(manifest).items
    sample = [process(i) for i in items[: min(len(items), 64)]]  # speech embedding alone: pre-decoded batches
    waves = [w for d in sample if hasattr(d, "waveforms") for w in d.waveforms]
    sample_s = sum(len(w) for w in waves) / 16000
    encoder.encode_speech(waves[:4], 16000)  # warm-up: kernels, allocator
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    with GpuSampler() as alone:
        t = time.perf_counter()
        encoder.encode_speech(waves, 16000, max_batch_seconds=batch_seconds)
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        t_alone = time.perf_counter() - t
    with GpuSampler() as sampler:
        summary = run_index(manifest, collection, encoder, workers=workers, batch_seconds=batch_seconds, progress=False,
                            attributes=attributes)
    s = summary
    return [
        f"| {label} | speech embedding alone, {len(waves)} pre-decoded segments | {sample_s / t_alone:.1f} | - | "
        f"{alone.summary()} |",
        f"| {label} | whole pipeline ({'with attributes' if attributes else '`--no-attributes`'}), {s.files_added} files, {s.audio_seconds / 60:.1f} min audio, "
        f"{workers} decode workers | {s.realtime_factor:.1f} | {s.input_wait_seconds:.1f} s files + "
        f"{s.prepare_wait_seconds:.1f} s batches of {s.wall_seconds:.1f} s | {sampler.summary()} |",
    ]


def main(argv: list[str] | None = None) -> None:
    """GPU-sized defaults when CUDA is present; without it, a message and exit 0 unless `--cpu`."""
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="without CUDA, run the small CPU version anyway")
    parser.add_argument("--clips", type=int, default=400 if cuda else 24, help="WAV files to generate")
    parser.add_argument("--repeat", type=int, default=10 if cuda else 1, help="times each file is listed")
    parser.add_argument("--workers", type=int, default=None, help="decode workers (default: as `clsp-search index`)")
    parser.add_argument("--batch-seconds", type=float, default=480.0 if cuda else 240.0)
    parser.add_argument("--big-layers", type=int, default=30 if cuda else 0,
                        help="layers of the CLSP-sized tower (30 = ~600 M parameters; 0 = skip)")
    parser.add_argument("--big-hidden", type=int, default=1280)
    parser.add_argument("--attributes", action="store_true",
                        help="measure voice attributes in the decode workers too (off: the device path alone)")
    args = parser.parse_args(argv if argv is not None else [])
    if not cuda and not args.cpu:
        print("bench_gpu_index: no CUDA device on this machine, nothing measured (skipped). The CPU indexing "
              "path is measured by bench_index; `--cpu` runs this script's small CPU version.", flush=True)
        return
    from indexer.cli import default_workers
    device = torch.device("cuda" if cuda else "cpu")
    workers = default_workers(args.attributes) if args.workers is None else args.workers
    where = torch.cuda.get_device_name(0) if cuda else f"no GPU: CPU only ({os.cpu_count()} cores)"
    print(f"Device: {where}; torch {torch.__version__}", flush=True)
    lines = ["| model | run | audio s / wall s | embedding loop input wait | GPU utilisation |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, files = make_corpus(root, args.clips, args.repeat)
        mini = load_mini(device)
        lines += run_one("clsp-mini", mini, manifest, root, workers, args.batch_seconds, args.attributes)
        if args.big_layers > 0:
            big = BigSpeechTowerEncoder(mini, device, layers=args.big_layers, hidden=args.big_hidden)
            label = f"{big.parameters / 1e6:.0f} M-parameter speech tower ({big.dtype})".replace("torch.", "")
            lines += run_one(label, big, manifest, root, workers, args.batch_seconds, args.attributes)
        else:
            lines.append("| CLSP-sized ~600 M speech tower | no GPU: skipped (run with --big-layers N to force) | - | - | - |")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
