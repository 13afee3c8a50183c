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
        "--batches", "2", "--size", "64", "--repeats", "1", "--rounds", "1",
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
    assert len(rows) == 5, result.stdout
