"""`--compute-dtype auto`: bf16 only where the CPU multiplies it in hardware."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.precision import native_bf16_cpu, resolve_compute_dtype

AMX = "processor : 0\nflags : fpu sse2 avx2 avx512f amx_bf16 amx_tile\n"
ZEN3 = "processor : 0\nflags : fpu sse2 avx2 fma\n"


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"cpuinfo-{abs(hash(text))}"
    path.write_text(text)
    return path


def test_native_bf16_is_read_from_the_cpu_flags_and_an_isa_cap(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    native_bf16_cpu.cache_clear()
    assert native_bf16_cpu(cpuinfo(tmp_path, AMX)) is True
    assert native_bf16_cpu(cpuinfo(tmp_path, ZEN3)) is False
    assert native_bf16_cpu(tmp_path / "missing") is False  # unreadable: float32 is never the slow choice
    native_bf16_cpu.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # oneDNN may not use the bf16 instructions
    assert native_bf16_cpu(cpuinfo(tmp_path, AMX)) is False
    native_bf16_cpu.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert native_bf16_cpu(cpuinfo(tmp_path, AMX)) is True
    native_bf16_cpu.cache_clear()


def test_auto_picks_bf16_only_where_native_and_an_explicit_bf16_elsewhere_is_warned_about():
    warnings: list[str] = []
    assert resolve_compute_dtype("auto", warnings.append, native=True) == "bfloat16"
    assert resolve_compute_dtype("auto", warnings.append, native=False) == "float32"
    assert resolve_compute_dtype("float32", warnings.append, native=True) == "float32"
    assert resolve_compute_dtype("bfloat16", warnings.append, native=True) == "bfloat16"
    assert not warnings
    assert resolve_compute_dtype("bfloat16", warnings.append, native=False) == "bfloat16"
    assert len(warnings) == 1 and "--compute-dtype auto" in warnings[0]
    with pytest.raises(ValueError, match="must be one of auto, float32, bfloat16"):
        resolve_compute_dtype("half", warnings.append)


def test_the_training_commands_refuse_an_unknown_precision_before_any_work(tmp_path):
    from cli.main import app

    for command in ("train", "tune-text"):
        result = CliRunner().invoke(app, [command, "--corpus", str(tmp_path), "--out", str(tmp_path / "out"),
                                          "--compute-dtype", "half"])
        assert result.exit_code == 2, result.output
        assert "must be one of auto, float32, bfloat16" in result.output
        assert not (tmp_path / "out").exists()


def test_the_training_commands_report_a_missing_corpus_as_an_error(tmp_path):
    from cli.main import app

    for command in ("train", "tune-text"):
        result = CliRunner().invoke(app, [command, "--corpus", str(tmp_path / "nowhere"), "--out", str(tmp_path / command),
                                          "--compute-dtype", "float32"])
        assert result.exit_code == 2, result.output
        assert "no manifest at" in result.output and "Traceback" not in result.output
