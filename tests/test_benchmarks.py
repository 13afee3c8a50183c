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


def table_rows(stdout, model=None):
    """The printed table's rows: first cell -> the cells after it, the header left out.

    Given `model`, that model's rows only: second cell -> the cells after it.
    """
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in stdout.splitlines()
        if line.startswith("| ")
    ]
    if model is None:
        return {row[0]: row[1:] for row in rows[1:]}
    return {row[1]: row[2:] for row in rows if row[0] == model}


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
    pytest.importorskip("kimm")
    # Our quantized and ONNX files are tests/test_export.py's; here, LiteRT's runner on
    # float and on int8 files (kimm's), and Keras'.
    result = run(
        "export_latency.py", "--models", "MobileViT_XXS", "--size", "64", "--repeats", "1",
        "--rounds", "1", "--runtimes", "keras", "fp32", "kimm_fp32", "kimm_int8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout, "MobileViT_XXS")
    assert list(rows) == [
        "Keras (TensorFlow, graph)",
        "LiteRT fp32 (XNNPACK)",
        "kimm LiteRT fp32 (XNNPACK)",
        "kimm LiteRT int8 (XNNPACK)",
    ], result.stdout
    # file size, ops, latency, speed-up over Keras, and kimm's latency over ours
    assert all(cells[1] in ("builtin", "") for cells in rows.values()), result.stdout
    assert rows["kimm LiteRT int8 (XNNPACK)"][1] == "builtin", result.stdout
    assert rows["LiteRT fp32 (XNNPACK)"][-1].endswith("x"), result.stdout


@pytest.mark.slow
def test_profile_ops_runs_and_prints_the_op_table():
    result = run(
        "profile_ops.py", "--model", "MobileViT_XXS", "--batch", "1", "--size", "64",
        "--runs", "1", "--optimize", "float32", "--top", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| op | ms per batch | share |" in result.stdout
    assert "Conv2D" in result.stdout  # the convolutions, by op type


TINY_TRAINING = ("--models", "MobileViT_XXS", "--size", "32", "--batch", "2", "--steps", "1",
                 "--warmup", "1", "--rounds", "1")  # fmt: skip


@pytest.mark.slow
def test_train_peers_runs_kimm_and_timm():
    # keras-mobilevit's own training step is the --paired test's.
    pytest.importorskip("timm")
    pytest.importorskip("kimm")
    peers = ["kimm (tensorflow)", "timm (pytorch)"]
    result = run("train_peers.py", *TINY_TRAINING, "--peers", *peers)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout, "MobileViT_XXS")
    assert list(rows) == peers, result.stdout
    # compiled, step (s), images/s, ratio to keras-mobilevit (not run), fastest step, peak RSS
    for peer in peers:
        assert float(rows[peer][2]) > 0 and rows[peer][3] == "", result.stdout


@pytest.mark.slow
def test_train_peers_pairs_a_kernel_against_the_model_as_shipped():
    result = run("train_peers.py", *TINY_TRAINING, "--paired", "activation_training")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout, "MobileViT_XXS")
    # paired steps, step-time ratio, img/s as shipped, img/s with the kernel off
    assert list(rows) == ["activation_training off"], result.stdout
    assert rows["activation_training off"][0] == "1", result.stdout
    assert float(rows["activation_training off"][1]) > 0, result.stdout


@pytest.mark.slow
def test_profile_ops_profiles_a_training_step():
    result = run(
        "profile_ops.py", "--train", "--model", "MobileViT_XXS", "--batch", "2", "--size", "32",
        "--runs", "1", "--top", "40",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| layer kind | pass | ms per step | share |" in result.stdout
    assert "| bn | backward |" in result.stdout  # BatchNorm's gradient, by layer


@pytest.mark.slow
def test_cold_start_times_the_cli_and_kimm():
    pytest.importorskip("timm")
    pytest.importorskip("kimm")
    result = run("cold_start.py", "--model", "MobileViT_XXS", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert list(rows) == [
        "keras-mobilevit --help",
        "keras-mobilevit predict (CLI)",
        "keras-mobilevit (Python)",
        "kimm (Python)",
    ], result.stdout
    # whole process, five phases, ratio: the phases are timed for the Python jobs only
    assert rows["keras-mobilevit (Python)"][-1] == "1.00x", result.stdout
    assert all(float(cell) >= 0 for cell in rows["kimm (Python)"][:6]), result.stdout


@pytest.mark.slow
def test_litert_ablation_prices_a_part_of_the_file():
    pytest.importorskip("ai_edge_litert")
    result = run(
        "litert_ablation.py", "--model", "MobileViT_XXS", "--size", "64", "--rounds", "1",
        "--repeats", "1", "--parts", "transposes",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    # latency, what the part costs, its share
    assert list(rows) == ["nothing (the true file)", "transposes"], result.stdout
    assert float(rows["transposes"][0]) > 0 and rows["transposes"][2].endswith("%"), result.stdout
