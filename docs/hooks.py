"""MkDocs hooks: the pages and tables written from the package itself at build time.

- `api.md`, the API reference: a `:::` entry (mkdocstrings) for every name of
  `keras_mobilevit.__all__` and of `keras_mobilevit.training.__all__`, and for
  the public names of the modules in `MODULE_SECTIONS`, grouped by kind.
- The table of weight sets on `models.md`, where the page says `WEIGHT_SETS_MARKER`:
  one row per `keras_mobilevit.pretrained.WEIGHT_SETS` row.

Parameters and MACs come from `COSTS` rather than from models built during the
build, which would take seconds each; tests/test_docs.py holds `COSTS` to built
models. `python docs/hooks.py` prints `COSTS` afresh, for when a model or an
input size is added to the weight sets.
"""

import logging
import math

import keras

import keras_mobilevit
from keras_mobilevit import pretrained
from keras_mobilevit.builder import REGISTRY
from keras_mobilevit.layers import DotProductAttention

log = logging.getLogger("mkdocs.hooks")

WEIGHT_SETS_MARKER = "<!-- weight sets table: docs/hooks.py -->"

# Multiply-accumulates and trainable parameters of each (model, input size) of the weight sets.
# Both grow linearly with the number of classes (the last layer's outputs), so each entry is
# `(params, MACs)` with no class, then what one class adds: a row's classes pick the total.
# Printed by `python docs/hooks.py`.
COSTS = {
    ("MobileViT_XXS", 256): ((951_024, 407_044_096), (321, 320)),
    ("MobileViT_XS", 256): ((1_932_848, 1_025_527_808), (385, 384)),
    ("MobileViT_S", 256): ((4_937_632, 2_000_191_488), (641, 640)),
    ("MobileViTV2_050", 256): ((1_113_593, 464_338_944), (257, 256)),
    ("MobileViTV2_075", 256): ((2_481_009, 1_027_596_288), (385, 384)),
    ("MobileViTV2_100", 256): ((4_388_841, 1_811_578_880), (513, 512)),
    ("MobileViTV2_125", 256): ((6_837_089, 2_816_286_720), (641, 640)),
    ("MobileViTV2_150", 256): ((9_825_753, 4_041_719_808), (769, 768)),
    ("MobileViTV2_150", 384): ((9_825_753, 9_093_869_568), (769, 768)),
    ("MobileViTV2_175", 256): ((13_354_833, 5_487_878_144), (897, 896)),
    ("MobileViTV2_175", 384): ((13_354_833, 12_347_725_824), (897, 896)),
    ("MobileViTV2_200", 256): ((17_424_329, 7_154_761_728), (1_025, 1_024)),
    ("MobileViTV2_200", 384): ((17_424_329, 16_098_213_888), (1_025, 1_024)),
    ("MobileViT_XXS_DeepLabV3", 512): ((1_849_456, 3_947_286_528), (257, 262_144)),
    ("MobileViT_XS_DeepLabV3", 512): ((2_938_672, 7_372_890_112), (257, 262_144)),
    ("MobileViT_S_DeepLabV3", 512): ((6_352_544, 13_688_020_992), (257, 262_144)),
    ("MobileViTV2_100_DeepLabV3", 512): ((13_307_881, 17_674_665_984), (513, 524_288)),
}

# The licences of the weights, by the Hub's identifier.
LICENCES = {pretrained.APPLE_SAMPLE_CODE: "Apple sample code"}

# Sections of the API page beyond the top-level package, each `(title, module, names)`;
# a `None` names its module's `__all__`.
MODULE_SECTIONS = (
    ("Fine-tuning: `keras_mobilevit.training`", "keras_mobilevit.training", None),
    (
        "Images: `keras_mobilevit.imagenet`",
        "keras_mobilevit.imagenet",
        ("load_image", "open_rgb"),
    ),
    (
        "Export: `keras_mobilevit.export`",
        "keras_mobilevit.export",
        ("export", "export_litert", "export_onnx", "ExportVerificationError"),
    ),
    (
        "Plots: `keras_mobilevit.plots`",
        "keras_mobilevit.plots",
        ("plot_history", "plot_confusion_matrix"),
    ),
    (
        "Weights: `keras_mobilevit.pretrained`, `keras_mobilevit.hub`",
        None,
        ("keras_mobilevit.pretrained.WeightSet", "keras_mobilevit.hub.WeightsUnavailableError"),
    ),
)

# The top-level names' sections, by the module that defines them (builders and classes
# are sorted by kind first).
TOP_LEVEL_SECTIONS = {
    "keras_mobilevit.imagenet": "Preprocessing and predictions",
    "keras_mobilevit.inference": "Fast inference",
    "keras_mobilevit.kernels": "Backend kernels",
}

API_INTRODUCTION = """\
# API reference

Generated from the docstrings of the package: everything `import keras_mobilevit` exports
(`keras_mobilevit.__all__`), then the fine-tuning recipe and the modules the guides use. The
models' pretrained weights are listed on [Models](models.md#weight-sets).
"""


def on_files(files, config):
    """Adds the generated API page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "api.md", content=api_page()))
    return files


def on_page_markdown(markdown, page, config, files):
    """Writes the table of weight sets into the page that asks for it."""
    if WEIGHT_SETS_MARKER in markdown:
        markdown = markdown.replace(WEIGHT_SETS_MARKER, weight_sets_table())
    return markdown


def api_page():
    """The markdown of the API reference: headings and mkdocstrings `:::` entries."""
    sections = {}
    for name in keras_mobilevit.__all__:
        sections.setdefault(_top_level_section(name), []).append(f"keras_mobilevit.{name}")
    for title, module, names in MODULE_SECTIONS:
        if names is None:
            names = _module(module).__all__
        sections[title] = [f"{module}.{name}" if module else name for name in names]
    lines = [API_INTRODUCTION]
    for title, paths in sections.items():
        lines.append(f"## {title}\n")
        for path in paths:
            lines.append(f"::: {path}")
            if _is_model_class(path):
                # Its methods are Keras', with Keras' docstrings.
                lines.append("    options:\n      members: false")
            lines.append("")
    return "\n".join(lines)


def _top_level_section(name):
    obj = getattr(keras_mobilevit, name)
    if name in REGISTRY:
        if REGISTRY[name].task == "segmentation":
            return "Segmentation models"
        return "Classification models"
    if isinstance(obj, type) and issubclass(obj, keras.Model):
        return "The model class"
    if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
        return "Layers"
    module = obj.__module__.removesuffix(".__init__")
    return TOP_LEVEL_SECTIONS.get(module, "Other functions")


def _module(path):
    import importlib

    return importlib.import_module(path)


def _is_model_class(path):
    module, _, name = path.rpartition(".")
    obj = getattr(_module(module), name)
    return isinstance(obj, type) and issubclass(obj, keras.Model)


def weight_sets_table():
    """The markdown table of `pretrained.WEIGHT_SETS`, one row each, in its order."""
    lines = [
        "| Model | `weights=` | Input | Classes | Metric | Upstream score | Params | GMACs "
        "| Licence | Hub repository |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in pretrained.WEIGHT_SETS:
        params, macs = row_costs(row)
        score = "-" if row.score is None else str(row.score)
        licence = LICENCES.get(row.license, row.license)
        lines.append(
            f"| `{row.model}` | `{row.name}` | {row.input_size} | {row.classes} | {row.metric} "
            f"| {score} | {params:,} | {macs / 1e9:.2f} | {licence} "
            f"| [`{row.repo}`](https://huggingface.co/{row.repo}) |"
        )
    return "\n".join(lines)


def row_costs(row):
    """`(trainable parameters, multiply-accumulates)` of `row`'s model at its size and classes."""
    key = (row.model, row.input_size)
    if key not in COSTS:
        # Slow (a model built), and right: only until COSTS has the entry.
        log.info("docs/hooks.py: no COSTS entry for %s; building the model to count", key)
        COSTS[key] = measure_costs(*key)
    (params, macs), (params_per_class, macs_per_class) = COSTS[key]
    return params + params_per_class * row.classes, macs + macs_per_class * row.classes


def measure_costs(model, input_size):
    """The `COSTS` entry of `model` at `input_size`: models of 1 and 2 classes, counted."""
    one, two = (count_costs(build(model, input_size, classes)) for classes in (1, 2))
    per_class = tuple(b - a for a, b in zip(one, two, strict=True))
    return tuple(a - d for a, d in zip(one, per_class, strict=True)), per_class


def build(model, input_size, classes):
    """`model` with random weights, for a batch of one `input_size` square image."""
    image = keras.Input(batch_shape=(1, input_size, input_size, 3))
    return REGISTRY[model].builder(weights=None, input_tensor=image, classes=classes)


def count_costs(model):
    """`(trainable parameters, multiply-accumulates)` of a model built for a batch of one."""
    params = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    return params, count_macs(model)


def count_macs(model):
    """The multiply-accumulates of one batch through `model`, built for a fixed input shape.

    Counted as `torch.utils.flop_counter` counts timm's models: convolutions,
    dense layers and attention's two matrix products; normalisation,
    activations, resizing and MobileViTV2's separable attention (elementwise
    products) are not counted.
    """
    products = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    total = 0
    for layer in model.layers:
        if isinstance(layer, products):
            # Every kernel weight is used once per output position.
            total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[:-1])
        elif isinstance(layer, DotProductAttention):
            batch, length, dim = layer.output.shape
            total += 2 * batch * length * length * dim  # queries x keys, then weights x values
        elif any("kernel" in variable.path for variable in layer.weights):
            raise ValueError(f"count_macs does not know {type(layer).__name__} ({layer.name}).")
    return total


def _models_and_sizes():
    return sorted(
        dict.fromkeys((row.model, row.input_size) for row in pretrained.WEIGHT_SETS),
        key=lambda key: (list(REGISTRY).index(key[0]), key[1]),
    )


if __name__ == "__main__":
    print("COSTS = {")
    for model, size in _models_and_sizes():
        (params, macs), (params_per_class, macs_per_class) = measure_costs(model, size)
        print(
            f"    ({model!r}, {size}): "
            f"(({params:_}, {macs:_}), ({params_per_class:_}, {macs_per_class:_})),"
        )
    print("}")
