"""Files saved by earlier releases keep loading and computing the same.

`tests/fixtures/` holds a tiny model with every registered layer, as built and
as optimized, saved by keras_mobilevit 0.1.0 (commit 00bb7e4) under the layer
names of the time (`Conv2D`, `Dense`, `DepthwiseConv2D`, `LayerNormalization`,
`MultiHeadSelfAttention`); `make_legacy_models.py` beside them wrote them.
"""

import os

import keras
import numpy as np
import pytest
from testing import TESTS, to_numpy

from keras_mobilevit import MobileViTModel
from keras_mobilevit.layers import (
    DotProductAttention,
    FastConv2D,
    FastDense,
    FastDepthwiseConv2D,
    FastLayerNormalization,
)

FIXTURES = os.path.join(TESTS, "fixtures")


@pytest.mark.parametrize("name", ["legacy_model", "legacy_optimized"])
def test_files_saved_by_0_1_0_load_and_predict_the_same(name):
    expected = np.load(os.path.join(FIXTURES, "legacy_outputs.npz"))
    model = keras.saving.load_model(os.path.join(FIXTURES, f"{name}.keras"), safe_mode=True)
    assert isinstance(model, MobileViTModel)
    # The renamed classes, under their old names: the kernels apply to them too.
    renamed = [FastConv2D, FastDense, FastDepthwiseConv2D, DotProductAttention]
    if name == "legacy_model":
        renamed.append(FastLayerNormalization)
    for cls in renamed:
        assert any(isinstance(layer, cls) for layer in model.layers), cls.__name__
    outputs = to_numpy(model(expected["images"], training=False))
    np.testing.assert_allclose(outputs, expected[name], rtol=1e-5, atol=1e-5)
