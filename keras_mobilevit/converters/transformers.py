"""Checkpoints in Hugging Face transformers' layout (Apple's `apple/*` repositories).

`MobileViTModel`, `MobileViTV2Model` and their classification and semantic
segmentation heads name the same tensors differently from timm, split v1's
attention projection into query, key and value, and were trained on BGR
images. `to_timm_layout` renames the tensors to timm's names (which the Keras
layers carry), fuses query/key/value, and permutes the stem convolution's input
channels so that the converted model takes RGB like every keras_mobilevit model.
"""

import re

import numpy as np

_BACKBONE_PREFIXES = ("mobilevit.", "mobilevitv2.")

# Applied in order to each tensor name (after the backbone prefix is removed).
_RENAMES = [
    (r"^conv_stem\.", "stem."),
    (r"^conv_1x1_exp\.", "final_conv."),
    (r"^classifier\.", "head.fc."),
    (r"^encoder\.layer\.(\d+)\.layer\.(\d+)\.", r"stages.\1.\2."),
    (r"^encoder\.layer\.(\d+)\.downsampling_layer\.", r"stages.\1.0."),
    (r"^encoder\.layer\.(\d+)\.", r"stages.\1.1."),
    (r"\.expand_1x1\.", ".conv1_1x1."),
    (r"\.conv_3x3\.", ".conv2_kxk."),
    (r"\.reduce_1x1\.", ".conv3_1x1."),
    (r"\.transformer\.layer\.(\d+)\.", r".transformer.\1."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.attention\.attention\.(query|key|value)\.", r".attn.\1."),
    (r"\.attention\.(qkv_proj|out_proj)\.", r".attn.\1."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
    (r"\.ffn\.conv1\.", ".mlp.fc1."),
    (r"\.ffn\.conv2\.", ".mlp.fc2."),
    (r"\.layernorm\.", ".norm."),
    (r"\.conv_projection\.", ".conv_proj."),
    (r"\.fusion\.", ".conv_fusion."),
    (r"\.normalization\.", ".bn."),
]


def is_transformers_layout(tensors):
    return any(name.startswith(_BACKBONE_PREFIXES) for name in tensors)


def _rename(name):
    for prefix in _BACKBONE_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    for pattern, replacement in _RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


def to_timm_layout(tensors):
    """Renames a transformers MobileViT(V2) state dict to timm's names, for RGB input."""
    renamed = {_rename(name): value for name, value in tensors.items()}
    converted = {}
    for name, value in renamed.items():
        # A convolution followed by BatchNorm is `conv`; a bare one is the module itself.
        if ".convolution." in name:
            module, _, parameter = name.partition(".convolution.")
            has_norm = f"{module}.bn.weight" in renamed
            name = f"{module}.conv.{parameter}" if has_norm else f"{module}.{parameter}"
        converted[name] = value
    _fuse_query_key_value(converted)
    if "stem.conv.weight" in converted:
        # Apple's checkpoints were trained on BGR: reverse the input channels.
        converted["stem.conv.weight"] = np.ascontiguousarray(converted["stem.conv.weight"][:, ::-1])
    return converted


def _fuse_query_key_value(tensors):
    """v1's separate query/key/value linears -> timm's single `qkv` (in that order)."""
    for name in [n for n in tensors if n.endswith(".attn.query.weight")]:
        module = name[: -len(".query.weight")]
        for parameter in ("weight", "bias"):
            parts = [tensors.pop(f"{module}.{p}.{parameter}") for p in ("query", "key", "value")]
            tensors[f"{module}.qkv.{parameter}"] = np.concatenate(parts, axis=0)
