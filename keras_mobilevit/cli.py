"""The `keras-mobilevit` command line."""

import argparse
import os
import sys


def _models():
    from keras_mobilevit.model import REGISTRY

    return tuple(REGISTRY)


def _model_name(value):
    for name in _models():
        if value.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown model {value!r}; choose from {', '.join(_models())}")


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


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "predict":
            predict(args)
    except (ValueError, OSError) as e:
        print(f"keras-mobilevit: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
