"""The `keras-mobilevit` command line."""

import argparse
import importlib
import os
import sys

import keras_mobilevit


def import_models(verbose=False):
    """Imports Keras and the models, which the console script leaves out until needed.

    Without `verbose`, TensorFlow's start-up log lines (oneDNN, CPU features), which its
    C++ code writes to the process' stderr before any logging is set up, are not shown.
    """
    if not keras_mobilevit._deferred:
        return
    keras_mobilevit._deferred = False
    if verbose:
        importlib.reload(keras_mobilevit)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            importlib.reload(keras_mobilevit)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _models(segmentation=False):
    # From the weights table, which needs no Keras: every model has pretrained weights.
    from keras_mobilevit import pretrained

    models = dict.fromkeys(row.model for row in pretrained.WEIGHT_SETS)
    return tuple(name for name in models if segmentation or not name.endswith("_DeepLabV3"))


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


def _non_negative_int(value):
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {value}")
    return number


def _weights(value):
    """`--weights`: 'none' (any case) means random weights, as `weights=None` does."""
    return None if value.lower() == "none" else value


def _trained_weights(value):
    if value.lower() == "none":
        raise argparse.ArgumentTypeError(
            "predict needs trained weights ('none' would print random classes): pass "
            "'imagenet', 'hf://owner/repo' or a weights file"
        )
    return value


def _check_weights(model, weights, takes_none=True):
    """Refuses, before any building or downloading, a --weights value `model` cannot load.

    The package's own messages name `weights=None`; these name the command's values.
    """
    from keras_mobilevit import hub, loading, pretrained

    names = pretrained.names(model)
    if weights is None or weights in names or hub.repo_id_of(weights) or loading.is_path(weights):
        loading.validate(weights, names)  # a file that is not there
        return
    choices = [*names, "none"] if takes_none else names
    valid = ", ".join(repr(choice) for choice in choices)
    having = pretrained.models_with(weights)
    reason = (
        f"--weights {weights} exists only for {', '.join(having)}"
        if having
        else f"unknown --weights {weights!r}"
    )
    raise ValueError(
        f"{reason}; {model} takes {valid}, 'hf://owner/repo', or a .safetensors, .weights.h5 "
        "or .keras file."
    )


def _hub_repo(value):
    from keras_mobilevit import hub

    try:
        return hub.parse_repo_id(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-mobilevit", description="MobileViT models for Keras 3."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {keras_mobilevit.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="classify images with a pretrained model",
        description="Print the top classes of each image: ImageNet's, or those of the weights "
        "(--weights flowers102: flower names), or --labels. Weights are downloaded from the "
        "Hugging Face Hub on first use and cached (see HF_HOME, HF_HUB_OFFLINE).",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG...)")
    predict.add_argument(
        "--model", type=_model_name, default="MobileViT_XS", help="one of " + ", ".join(_models())
    )
    predict.add_argument(
        "--weights",
        type=_trained_weights,
        default="imagenet",
        help="'imagenet', 'imagenet22k' (MobileViTV2 1.5 to 2.0), 'flowers102' (MobileViT_XXS, "
        "XS, S, MobileViTV2_050, 100), 'hf://owner/repo', or a .safetensors / .weights.h5 / "
        ".keras file",
    )
    predict.add_argument(
        "--labels",
        metavar="NAME|FILE",
        help="the classes the weights predict: 'imagenet', 'oxford_flowers102', or a text file "
        "of class names, one a line, in class order; default: those of --weights, ImageNet's "
        "for a file or repository",
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
        "--weights",
        type=_weights,
        default=argparse.SUPPRESS,
        help="as for predict, or 'none' (random weights); default: the model's own "
        "('imagenet', 'pascal_voc')",
    )
    export.add_argument("--format", required=True, choices=["litert", "onnx"])
    export.add_argument(
        "--quantize",
        choices=["float16", "dynamic", "int8", "int8_full"],
        help="LiteRT only; default float32",
    )
    export.add_argument(
        "--calibration-images",
        metavar="DIR",
        help="images that calibrate --quantize int8 / int8_full",
    )
    export.add_argument(
        "--input-size", type=_positive_int, default=None, help="square input size (default 256)"
    )
    export.add_argument("--output", required=True, metavar="FILE")

    train = commands.add_parser(
        "train",
        help="fine-tune a classifier on an image classification dataset",
        description="Fine-tune a model on a tensorflow-datasets dataset or a directory of class "
        "folders: augmentation, AdamW with warm-up and cosine decay, label smoothing, early "
        "stopping. Writes the model, history, test metrics and plots to --output; an "
        "interrupted run resumes when run again with the same --output; any other run there is "
        "refused unless --overwrite. See docs/training.md.",
    )
    train.add_argument(
        "--dataset",
        default="oxford_flowers102",
        help="a tensorflow-datasets name (default oxford_flowers102) or a directory of class "
        "folders",
    )
    train.add_argument(
        "--model", type=_model_name, default="MobileViT_XS", help="one of " + ", ".join(_models())
    )
    train.add_argument(
        "--weights",
        type=_weights,
        default="imagenet",
        help="what the backbone starts from: 'imagenet' (default), 'none' (from scratch), "
        "'hf://owner/repo', or a weights file",
    )
    train.add_argument("--image-size", type=_positive_int, default=256, help="default 256")
    train.add_argument("--epochs", type=_positive_int, default=30, help="default 30")
    train.add_argument(
        "--batch-size", type=_positive_int, default=32, help="global batch size (default 32)"
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        help="peak learning rate; default 2e-3 * batch size / 256 (8e-3 from scratch)",
    )
    train.add_argument("--label-smoothing", type=float, default=0.1, help="default 0.1")
    train.add_argument(
        "--mixed-precision", action="store_true", help="train with the mixed_bfloat16 policy"
    )
    train.add_argument(
        "--freeze-backbone-epochs",
        type=_non_negative_int,
        default=0,
        help="train only the classifier for this many epochs first (default 0)",
    )
    train.add_argument(
        "--patience",
        type=_positive_int,
        default=5,
        help="epochs without a better validation loss before stopping (default 5)",
    )
    train.add_argument(
        "--output", metavar="DIR", help="default runs/<model>-<dataset>-<date>-<time>"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in --output, replacing the run there, finished or interrupted "
        "(without it a finished run, or an interrupted one with other settings, is refused)",
    )
    train.add_argument(
        "--distribute",
        choices=["mirrored", "multi_worker"],
        help="data-parallel training on all local devices, or on the workers of TF_CONFIG",
    )
    train.add_argument("--seed", type=int, default=0, help="default 0")
    train.add_argument(
        "--steps-per-epoch", type=_positive_int, help="default: one pass over the training set"
    )
    train.add_argument(
        "--max-examples", type=_positive_int, help="use at most this many images of each split"
    )
    train.add_argument("--data-dir", help="tensorflow-datasets' data directory")
    train.add_argument(
        "--strict-data",
        action="store_true",
        help="refuse a directory dataset holding files that are not images, instead of "
        "skipping them",
    )
    train.add_argument(
        "--push-to-hub",
        type=_hub_repo,
        metavar="OWNER/NAME",
        help="then save the model to this Hugging Face Hub repository (needs `hf auth login` "
        "or HF_TOKEN)",
    )
    for command in commands.choices.values():
        command.add_argument(
            "--debug", action="store_true", help="show the full traceback of an error"
        )
        command.add_argument(
            "--verbose", action="store_true", help="show TensorFlow's start-up log lines"
        )
    return parser


def predict(args):
    for path in args.images:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No image file at {path!r}.")

    import_models(args.verbose)
    import keras
    import numpy as np

    from keras_mobilevit import hub, imagenet, labels, pretrained
    from keras_mobilevit.builder import REGISTRY

    _check_weights(args.model, args.weights, takes_none=False)
    named = args.weights in pretrained.names(args.model)
    weight_set = pretrained.find(args.model, args.weights if named else "imagenet")
    class_labels = _labels(args.labels, weight_set if named else None)
    # A bad image fails before the weights are fetched.
    batch = np.stack(
        [imagenet.load_image(path, crop_pct=weight_set.crop_pct) for path in args.images]
    )
    options = {}
    if named:
        pin = pretrained.pin(weight_set)
        # An unpublished weight set fails in the builder, before any download.
        if pin is not None or not weight_set.released_here:
            repo = pin.repo if pin is not None else weight_set.repo
            print(
                f"Fetching {args.model} weights from the Hugging Face Hub ({repo})...",
                file=sys.stderr,
            )
    else:
        if args.weights.startswith(hub.HUB_PREFIX):
            print(
                f"Fetching weights from the Hugging Face Hub ({args.weights})...", file=sys.stderr
            )
        if class_labels is not None:
            options["classes"] = len(labels.class_names(class_labels))
    model = REGISTRY[args.model].builder(weights=args.weights, **options)
    # On TensorFlow one eager call: tracing the graph `predict` runs takes longer than the
    # call (XS, one image: 0.85 s in all, against 2.6 s). JAX's eager call compiles op by op
    # (13.5 s, against 2.1 s through `predict`); PyTorch's `predict` is as fast as a call.
    if keras.backend.backend() == "tensorflow":
        probabilities = keras.ops.convert_to_numpy(model(batch, training=False))
    else:
        probabilities = model.predict(batch, verbose=0)
    finite = np.isfinite(probabilities).all(axis=1)
    if not finite.all():
        images = ", ".join(path for path, ok in zip(args.images, finite, strict=True) if not ok)
        raise ValueError(
            f"The model's outputs for {images} are not finite (NaN or infinity), so they rank "
            f"no classes. The images' pixels were finite: check the weights ({args.weights})."
        )
    decoded = labels.decode_predictions(probabilities, top=args.top, labels=class_labels)
    for path, top in zip(args.images, decoded, strict=True):
        print(path)
        for rank, (class_id, name, score) in enumerate(top, start=1):
            print(f"  {rank}. {name:<30} {score:7.2%}  ({class_id})")


def _labels(value, weight_set):
    """The `labels` to decode with: `--labels`' set or file, else the weight set's, else None.

    `None` is ImageNet's 1000 classes; a file gives a list of its names.
    """
    from keras_mobilevit import labels

    if value is None:
        return weight_set.labels if weight_set is not None else None
    if value in labels.LABEL_SETS:
        return value
    if not os.path.isfile(value):
        raise FileNotFoundError(
            f"--labels {value}: neither a label set ({', '.join(labels.LABEL_SETS)}) nor a file."
        )
    with open(value, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"--labels {value}: the file holds no class names (one a line).")
    return names


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
    import_models(args.verbose)
    from keras_mobilevit import export as export_lib
    from keras_mobilevit.builder import REGISTRY

    if args.quantize in ("int8", "int8_full") and not args.calibration_images:
        raise ValueError(
            f"--quantize {args.quantize} needs --calibration-images DIR: integer quantization sets "
            "each activation's range from real images."
        )
    size = args.input_size or export_lib.DEFAULT_INPUT_SIZE
    representative = None
    if args.calibration_images:
        representative = _calibration_images(args.calibration_images, size)
    # Fail on a bad request before building (and perhaps downloading) the model.
    export_lib.check_request(args.output, args.format, args.quantize, representative)
    # Without --weights, the builder's own default.
    options = {"weights": args.weights} if "weights" in vars(args) else {}
    if options:
        _check_weights(args.model, args.weights)
    model = REGISTRY[args.model].builder(**options)
    replacing = os.path.exists(args.output)
    report = export_lib.export(
        model, args.output, args.format, args.quantize, representative, input_size=size
    )
    print(
        f"{report.path}: {report.size / 2**20:.2f} MiB, {args.format}, "
        f"{args.quantize or 'float32'}, input 1x{size}x{size}x3"
        + (" (replaced the existing file)" if replacing else "")
    )
    print(f"ops ({len(report.ops)}): {', '.join(report.ops)}")
    print(f"max |difference| from Keras on a random batch: {report.max_difference:.3g}")


def train(args):
    import_models(args.verbose)
    from keras_mobilevit import hub, training

    _check_weights(args.model, args.weights)
    result = training.finetune(
        dataset=args.dataset,
        model=args.model,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        label_smoothing=args.label_smoothing,
        mixed_precision=args.mixed_precision,
        freeze_backbone_epochs=args.freeze_backbone_epochs,
        output_dir=args.output,
        distribute=args.distribute,
        seed=args.seed,
        patience=args.patience,
        steps_per_epoch=args.steps_per_epoch,
        max_examples=args.max_examples,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
        strict_data=args.strict_data,
    )
    metrics = result.metrics
    top5 = metrics["test_top5_accuracy"]
    print(
        f"test ({metrics['test_examples']} images): top-1 {metrics['test_accuracy']:.2%}, "
        + (f"top-5 {top5:.2%}, " if top5 is not None else "")
        + f"macro F1 {metrics['test_macro_f1']:.3f}, loss {metrics['test_loss']:.4f}"
    )
    model_path = os.path.join(result.output_dir, "model.keras")
    print(f"model, history, metrics and plots: {result.output_dir}")
    if args.push_to_hub:
        try:
            url = hub.push_to_hub(result.model, args.push_to_hub)
        except OSError as e:
            raise hub.HubUploadError(
                f"{e}\nThe trained model is saved in {model_path}; to publish it later, run "
                f"keras_mobilevit.hub.push_to_hub({model_path!r}, {args.push_to_hub!r})."
            ) from e
        print(f"pushed to {url}; load it with keras.saving.load_model('hf://{args.push_to_hub}')")


def _is_expected(error):
    """Whether `error` is one a user's input, files, network or environment can cause.

    Anything else is a bug in this package and keeps its traceback.
    """
    export_lib = sys.modules.get("keras_mobilevit.export")  # not imported: not its error
    if export_lib is not None and isinstance(error, export_lib.ExportVerificationError):
        return True
    return isinstance(error, (ValueError, OSError, ImportError))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"predict": predict, "export": export, "train": train}
    try:
        args = build_parser().parse_args(argv)
        commands[args.command](args)
    except KeyboardInterrupt:
        # finetune has said where the checkpoint is and how to resume.
        return 130
    except Exception as e:
        if "--debug" in argv or not _is_expected(e):
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"keras-mobilevit: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
