"""The `keras-mobilevit` command line."""

import argparse
import os
import sys


def _models(segmentation=False):
    from keras_mobilevit import deeplabv3
    from keras_mobilevit.model import REGISTRY

    return tuple(REGISTRY) + (tuple(deeplabv3.VARIANTS) if segmentation else ())


def _model_name(value, segmentation=False):
    for name in _models(segmentation):
        if value.lower() == name.lower():
            return name
    choices = ", ".join(_models(segmentation))
    raise argparse.ArgumentTypeError(f"unknown model {value!r}; choose from {choices}")


def _any_model_name(value):
    return _model_name(value, segmentation=True)


def _positive_int(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-mobilevit", description="MobileViT models for Keras 3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="classify images with an ImageNet model",
        description="Print the top ImageNet classes of each image. Weights are downloaded "
        "from the Hugging Face Hub on first use and cached (see HF_HOME, HF_HUB_OFFLINE).",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG...)")
    predict.add_argument(
        "--model", type=_model_name, default="MobileViT_XS", help="one of " + ", ".join(_models())
    )
    predict.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet', 'imagenet22k' (MobileViTV2 1.5 to 2.0), 'hf://owner/repo', or a "
        ".safetensors / .weights.h5 file",
    )
    predict.add_argument("--top", type=_positive_int, default=5, help="classes to print per image")

    export = commands.add_parser(
        "export",
        help="export a model to LiteRT (TFLite) or ONNX",
        description="Export a model with a fixed input size, check the file against Keras, "
        "and print its size, op set and the difference measured.",
    )
    export.add_argument("model", type=_any_model_name, help="a classifier or DeepLabV3 model")
    export.add_argument(
        "--weights", help="as for predict; default: the model's own ('imagenet', 'pascal_voc')"
    )
    export.add_argument("--format", required=True, choices=["litert", "onnx"])
    export.add_argument(
        "--quantize", choices=["float16", "dynamic", "int8"], help="LiteRT only; default float32"
    )
    export.add_argument(
        "--calibration-images", metavar="DIR", help="images that calibrate --quantize int8"
    )
    export.add_argument(
        "--input-size", type=_positive_int, default=None, help="square input size (default 256)"
    )
    export.add_argument("--output", required=True, metavar="FILE")
    return parser


def predict(args):
    for path in args.images:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No image file at {path!r}.")

    import numpy as np

    import keras_mobilevit
    from keras_mobilevit import imagenet, weights
    from keras_mobilevit.model import REGISTRY, hub_repos_for

    config = REGISTRY[args.model]
    hub_repos = hub_repos_for(config, input_shape=(None, None, 3))
    if args.weights in hub_repos:
        repo = hub_repos[args.weights]
        print(
            f"Fetching {args.model} weights from the Hugging Face Hub ({repo})...", file=sys.stderr
        )
    elif args.weights.startswith(weights.HUB_PREFIX):
        print(f"Fetching weights from the Hugging Face Hub ({args.weights})...", file=sys.stderr)
    model = getattr(keras_mobilevit, args.model)(weights=args.weights)

    batch = np.stack(
        [imagenet.load_image(path, crop_pct=config.eval_crop_pct) for path in args.images]
    )
    probabilities = np.asarray(model.predict(batch, verbose=0))
    for path, top in zip(
        args.images, imagenet.decode_predictions(probabilities, top=args.top), strict=True
    ):
        print(path)
        for rank, (class_id, name, score) in enumerate(top, start=1):
            print(f"  {rank}. {name:<30} {score:7.2%}  ({class_id})")


def _calibration_images(directory, size):
    """A representative dataset: the images of `directory`, evaluation-transformed."""
    from keras_mobilevit import imagenet

    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No calibration image directory at {directory!r}.")
    suffixes = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
    paths = sorted(
        os.path.join(directory, f) for f in os.listdir(directory) if f.lower().endswith(suffixes)
    )
    if not paths:
        raise ValueError(f"No images ({', '.join(suffixes)}) in {directory!r} to calibrate with.")
    return lambda: (imagenet.load_image(p, size=size)[None] for p in paths)


def export(args):
    import keras_mobilevit
    from keras_mobilevit import export as export_lib

    if args.quantize == "int8" and not args.calibration_images:
        raise ValueError(
            "--quantize int8 needs --calibration-images DIR: full-integer quantization sets "
            "each activation's range from real images."
        )
    size = args.input_size or export_lib.DEFAULT_INPUT_SIZE
    representative = None
    if args.calibration_images:
        representative = _calibration_images(args.calibration_images, size)
    # Fail on a bad request before building (and perhaps downloading) the model.
    export_lib.check_request(args.output, args.format, args.quantize, representative)
    options = {} if args.weights is None else {"weights": args.weights}
    model = getattr(keras_mobilevit, args.model)(**options)
    report = export_lib._export(
        model, args.output, args.format, args.quantize, representative, True, size, 1
    )
    print(
        f"{report.path}: {report.size / 2**20:.2f} MiB, {args.format}, "
        f"{args.quantize or 'float32'}, input 1x{size}x{size}x3"
    )
    print(f"ops ({len(report.ops)}): {', '.join(report.ops)}")
    print(f"max |difference| from Keras on a random batch: {report.max_difference:.3g}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "predict":
            predict(args)
        elif args.command == "export":
            export(args)
    except (ValueError, OSError) as e:
        print(f"keras-mobilevit: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
