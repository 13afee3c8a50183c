"""Training on several devices: `tf.distribute` mirrored and multi-worker strategies on
TensorFlow, `keras.distribution.DataParallel` on JAX, which process is the chief, and what the
data must look like to split over the replicas.
"""

import contextlib
import os

import keras
import numpy as np

DISTRIBUTE_CHOICES = ("mirrored", "multi_worker")


def resolve_distribution(distribute):
    """`(strategy or distribution or None, is_chief)` for `distribute`."""
    if distribute is None:
        return None, True
    backend = keras.backend.backend()
    if _is_keras_distribution(distribute):
        return distribute, _jax_process_index() == 0
    if not isinstance(distribute, str):
        import tensorflow as tf

        if not isinstance(distribute, tf.distribute.Strategy):
            raise ValueError(
                f"distribute must be None, 'mirrored', 'multi_worker', a tf.distribute.Strategy "
                f"or a keras.distribution.Distribution, got {type(distribute).__name__}."
            )
        if backend != "tensorflow":
            raise ValueError(
                f"A tf.distribute strategy needs the TensorFlow backend (this is {backend}): "
                "set KERAS_BACKEND=tensorflow, or pass a keras.distribution.Distribution on JAX."
            )
        return distribute, _tf_is_chief(distribute)
    if backend == "tensorflow":
        import tensorflow as tf

        if distribute == "mirrored":
            return tf.distribute.MirroredStrategy(), True
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "distribute='multi_worker' reads the cluster from the TF_CONFIG environment "
                "variable, which is not set. See docs/training.md for an example."
            )
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise RuntimeError(
                f"{e}: TensorFlow had already run something in this process before finetune "
                "created its MultiWorkerMirroredStrategy. Create the strategy first thing "
                "(tf.distribute.MultiWorkerMirroredStrategy()) and pass it as distribute=, "
                "or use the `keras-mobilevit train --distribute multi_worker` command."
            ) from e
        return strategy, _tf_is_chief(strategy)
    if backend == "jax":
        if distribute == "multi_worker":
            keras.distribution.initialize()
        devices = keras.distribution.list_devices()
        return keras.distribution.DataParallel(devices=devices), _jax_process_index() == 0
    raise ValueError(
        f"distribute={distribute!r} is supported on the TensorFlow (tf.distribute) and JAX "
        f"(keras.distribution) backends; this is {backend}. Set KERAS_BACKEND."
    )


def num_replicas(distribution):
    """Over how many devices each batch is split."""
    if distribution is None:
        return 1
    if hasattr(distribution, "num_replicas_in_sync"):  # tf.distribute
        return distribution.num_replicas_in_sync
    mesh = distribution.device_mesh  # keras.distribution: the batch is split over the mesh
    return int(np.prod(mesh.shape)) if _is_keras_data_parallel(distribution) else 1


def _is_keras_data_parallel(distribution):
    return isinstance(distribution, keras.distribution.DataParallel)


def _is_keras_distribution(value):
    # keras.distribution exports its distributions but not their base class.
    return isinstance(value, (keras.distribution.DataParallel, keras.distribution.ModelParallel))


def _tf_is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_id(distribution):
    """This process's name, for a backup folder of its own (tf multi-worker, JAX), or None."""
    resolver = getattr(distribution, "cluster_resolver", None)
    if getattr(resolver, "task_type", None) is not None:
        return f"{resolver.task_type}-{resolver.task_id}"
    if _is_keras_distribution(distribution):
        return f"process-{_jax_process_index()}"
    return None


def _jax_process_index():
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def scope(distribution):
    """The scope of `distribution`, where variables are created; none for one device."""
    if distribution is None:
        return contextlib.nullcontext()
    return distribution.scope()


def split_over_replicas(data, batch_size, replicas, distribute):
    """Checks that `batch_size` splits over `replicas`; trims validation to a multiple of them."""
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} does not split evenly over the {replicas} replicas of "
            f"distribute={distribute!r}: use a multiple of {replicas}."
        )
    if replicas > 1 and data.counts["validation"] % replicas:
        # Keras 3 (TensorFlow trainer, `_maybe_symbolic_build`) averages the first
        # batch of every fit and evaluation over the replicas, which fails (an AddN
        # of unequal shapes) when that batch does not split evenly, and JAX cannot
        # shard such a batch at all: leave out at most replicas - 1 validation
        # images. The test metrics use every image.
        data.counts["validation"] -= data.counts["validation"] % replicas
        data.examples["validation"] = data.examples["validation"].take(data.counts["validation"])


def shard_by_data(ds, distribute):
    """Multi-worker input: every worker reads everything and keeps its share of batches.

    (tf.data's default, sharding by file, fails when a dataset has fewer
    files than there are workers.)
    """
    if distribute != "multi_worker" or keras.backend.backend() != "tensorflow":
        return ds
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


@contextlib.contextmanager
def explain_multi_worker_failure(distribution):
    """Names the Keras 3 limitation behind a multi-worker `fit` failure."""
    try:
        yield
    except ValueError as e:
        resolver = getattr(distribution, "cluster_resolver", None)
        cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers > 1 and "PerReplica" in str(e):
            raise ValueError(
                "Keras 3 cannot fit with tf.distribute.MultiWorkerMirroredStrategy over "
                f"{workers} workers: its TensorFlow trainer averages the first input batch "
                "over the workers to build the model symbolically, and that fails "
                "(https://github.com/keras-team/keras/issues/20585). Train on one machine "
                "(distribute='mirrored'), or use the JAX backend, where "
                "distribute='multi_worker' uses keras.distribution."
            ) from e
        raise
