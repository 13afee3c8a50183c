"""The documentation site builds with `mkdocs build --strict` and documents the whole API.

The build is the one the docs workflow runs: broken links, missing references
and docstring warnings fail it. The models page's costs come from a table in
docs/hooks.py, held here to built models and to torch's count of timm's.
"""

import dataclasses
import html
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import keras_mobilevit
from keras_mobilevit import pretrained, training

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # This checkout's package, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING -" in line]
    assert result.returncode == 0, "\n".join(warnings) or result.stderr[-3000:]
    return site_dir


def _cells(row_html):
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row_html, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def _weight_sets_rows(page):
    """The body rows of the first table after the "Weight sets" heading, as lists of cells."""
    section = page[page.index('id="weight-sets"') :]
    table = section[section.index("<table>") : section.index("</table>")]
    return [_cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]


@pytest.mark.slow
def test_api_page_documents_every_public_name(site):
    page = (site / "api" / "index.html").read_text()
    public = [f"keras_mobilevit.{name}" for name in keras_mobilevit.__all__]
    public += [f"keras_mobilevit.training.{name}" for name in training.__all__]
    missing = [path for path in public if f'id="{path}"' not in page]
    assert not missing, f"not on the API page: {missing}"
    # The builders are generated functions: their docstrings and signatures must come through.
    assert "Instantiates the MobileViT_XS architecture" in page
    assert "output_stride" in page


@pytest.mark.slow
def test_models_page_has_one_row_per_weight_set(site):
    rows = _weight_sets_rows((site / "models" / "index.html").read_text())
    assert len(rows) == len(pretrained.WEIGHT_SETS)
    for cells, weight_set in zip(rows, pretrained.WEIGHT_SETS, strict=True):
        model, name, size, classes, metric, score, params, gmacs, _, repo = cells
        assert (model, name, repo) == (weight_set.model, weight_set.name, weight_set.repo)
        assert (int(size), int(classes), metric) == (
            weight_set.input_size,
            weight_set.classes,
            weight_set.metric,
        )
        assert score == ("-" if weight_set.score is None else str(weight_set.score))
        expected_params, expected_macs = hooks.row_costs(weight_set)
        assert int(params.replace(",", "")) == expected_params
        assert float(gmacs) == pytest.approx(expected_macs / 1e9, abs=0.005)


def test_a_new_weight_set_gets_its_row_with_costs_for_its_classes(monkeypatch):
    imagenet = pretrained.find("MobileViT_XS", "imagenet")
    unscored = dataclasses.replace(imagenet, name="flowers102", classes=102, score=None)
    monkeypatch.setattr(pretrained, "WEIGHT_SETS", (*pretrained.WEIGHT_SETS, unscored))
    last = hooks.weight_sets_table().splitlines()[-1]
    cells = [cell.strip() for cell in last.strip("|").split("|")]
    assert cells[:4] == ["`MobileViT_XS`", "`flowers102`", "256", "102"]
    assert cells[5] == "-"
    # The classifier's 385 parameters per class (384 features and a bias), 102 classes of them.
    assert cells[6] == f"{2_317_848 - 385 * (1000 - 102):,}"


def test_costs_cover_every_weight_set():
    missing = {(row.model, row.input_size) for row in pretrained.WEIGHT_SETS} - set(hooks.COSTS)
    assert not missing, f"docs/hooks.py COSTS lacks {missing}: run `python docs/hooks.py`"


COST_CASES = [
    ("MobileViT_XXS", 256, 1000),
    ("MobileViT_XXS", 256, 102),  # another class count than the table's entries were built with
    ("MobileViTV2_050", 256, 1000),
    ("MobileViTV2_150", 384, 1000),
    ("MobileViT_XXS_DeepLabV3", 512, 21),
]


@pytest.mark.parametrize("model, size, classes", COST_CASES)
def test_costs_table_matches_built_models(model, size, classes):
    row = pretrained.WeightSet(model, "any", "any/repo", classes, "any", 1.0, size)
    assert hooks.row_costs(row) == hooks.count_costs(hooks.build(model, size, classes))


@pytest.mark.parametrize(
    "variant, timm_name",
    [("MobileViT_XXS", "mobilevit_xxs"), ("MobileViTV2_050", "mobilevitv2_050")],
)
def test_macs_are_counted_as_torch_counts_timms_models(variant, timm_name):
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    reference = timm.create_model(timm_name, pretrained=False).eval()
    for module in reference.modules():
        if hasattr(module, "fused_attn"):
            # torch counts no multiplications inside scaled_dot_product_attention.
            module.fused_attn = False
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.zeros(1, 3, 256, 256))
    params = sum(p.numel() for p in reference.parameters())
    assert hooks.count_costs(hooks.build(variant, 256, 1000)) == (
        params,
        counter.get_total_flops() // 2,
    )
