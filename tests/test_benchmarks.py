"""Smoke runs of the benchmark scripts, so they cannot rot. No timing is asserted."""

import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def run(script, *args):
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_build_and_predict_runs_and_prints_a_table():
    result = run(
        "build_and_predict.py", "--models", "MobileViT_XXS", "MobileViTV2_050",
        "--peers", "keras-mobilevit (tensorflow)", "timm (pytorch)",
        "--batches", "2", "--size", "64", "--repeats", "1", "--min-seconds", "0", "--rounds", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| MobileViT")]
    assert len(rows) == 4 and not any("skipped" in row for row in rows), result.stdout


@pytest.mark.slow
def test_export_latency_runs_and_prints_a_table():
    pytest.importorskip("ai_edge_litert")
    result = run(
        "export_latency.py", "--models", "MobileViT_XXS", "--repeats", "1", "--rounds", "1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| MobileViT_XXS")]
    runtimes = [row.split("|")[2].strip() for row in rows]
    assert runtimes == [
        "Keras (TensorFlow, graph)",
        *(f"LiteRT {q} (XNNPACK)" for q in ("fp32", "float16", "dynamic", "int8", "int8_full")),
        "ONNX Runtime fp32",
    ], result.stdout


@pytest.mark.slow
def test_profile_ops_runs_and_prints_the_op_table():
    result = run(
        "profile_ops.py", "--model", "MobileViT_XXS", "--batch", "1", "--size", "64",
        "--runs", "1", "--optimize", "float32", "--top", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| op | ms per batch | share |" in result.stdout
    assert "Conv2D" in result.stdout  # the convolutions, by op type
