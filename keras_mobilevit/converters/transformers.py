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

from keras_mobilevit.converters import timm

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


def to_timm_layout(tensors, source):
    """Renames a transformers MobileViT(V2) state dict to timm's names, for RGB input.

    `source` names the file in errors: a missing query, key or value tensor
    is named as the file must spell it.
    """
    renamed = {_rename(name): name for name in tensors}
    # timm's name -> the file's.
    file_names = {}
    for name, file_name in renamed.items():
        # A convolution followed by BatchNorm is `conv`; a bare one is the module itself.
        if ".convolution." in name:
            module, _, parameter = name.partition(".convolution.")
            has_norm = f"{module}.bn.weight" in renamed
            name = f"{module}.conv.{parameter}" if has_norm else f"{module}.{parameter}"
        file_names[name] = file_name
    converted = {name: tensors[file_name] for name, file_name in file_names.items()}
    _fuse_query_key_value(converted, file_names, source)
    if "stem.conv.weight" in converted:
        # Apple's checkpoints were trained on BGR: reverse the input channels.
        converted["stem.conv.weight"] = np.ascontiguousarray(converted["stem.conv.weight"][:, ::-1])
    return converted


_QUERY_KEY_VALUE = re.compile(r"^(.*\.attn)\.(?:query|key|value)\.(?:weight|bias)$")


def _fuse_query_key_value(tensors, file_names, source):
    """v1's separate query/key/value linears -> timm's single `qkv` (in that order)."""
    attentions = {}  # module -> one of its tensors
    for name in tensors:
        if match := _QUERY_KEY_VALUE.match(name):
            attentions.setdefault(match[1], name)
    for module, present in attentions.items():
        dim = tensors[present].shape[0]  # each of the three is a (dim, dim) linear
        for parameter, shape in (("weight", (dim, dim)), ("bias", (dim,))):
            parts = [f"{module}.{p}.{parameter}" for p in ("query", "key", "value")]
            for part in parts:
                if part not in tensors:
                    # The file's name for it: a present one's, with the last two parts changed.
                    file_name = file_names[present].rsplit(".", 2)[0] + part[len(module) :]
                    raise timm.missing_tensor_error(
                        source, file_name, shape, f"{module}.qkv".replace(".", "_"), "transformers'"
                    )
            tensors[f"{module}.qkv.{parameter}"] = np.concatenate(
                [tensors.pop(part) for part in parts], axis=0
            )
