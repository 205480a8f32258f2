"""Train a MobileNetV2 image classifier (Keras 3 or PyTorch, no pretrained weights) on a labelled image folder."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Literal

from claimed_airflow.components.train.image_classifier import (  # noqa: F401 - load_image_folder: public helper
    INDEX,
    LABELS,
    SPLIT,
    ImageClassifier,
    load_gray_images,
    load_image_folder,
)
from claimed_airflow.core import InputPath, OutputPath, Progress, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import INPUT_OFFSET, INPUT_SCALE, network_input

log = logging.getLogger("claimed_airflow")


@component("train", gpus=1, cpu="4", memory="8Gi")
def mobilenet_v2(
    images: InputPath,
    epochs: int = 20,
    batch_size: int = 16,
    image_size: int = 64,
    alpha: float = 0.35,
    learning_rate: float = 0.001,
    seed: int = 42,
    framework: Literal["keras", "torch"] = "keras",
    mixed_precision: bool = True,
    holdout: bool = True,
    model: OutputPath = "model",
) -> dict:
    """Train MobileNetV2 (``weights=None``) to classify the labels of an image folder, on a GPU when one is present.

    Both frameworks train the same recipe: Adam with a one-cycle learning rate (warm-up to
    ``learning_rate``, then cosine annealing to zero), each epoch on a copy of the images mirrored and
    shifted at random (seeded; a small cohort is otherwise learnt by heart), and after the last epoch the batch-norm
    statistics are recomputed over the training images (the moving averages of a short training
    lag far behind the weights; Keras' MobileNetV2 keeps 99.9 % of them per step), so the saved,
    inference-mode network is the one trained. The saved model is then loaded as ``predict.images``
    loads it and scored on the training images (``saved_train_accuracy``) and, with a held-out split,
    on the test images (``test_accuracy``); a saved model more than 5 points below the training
    accuracy is logged as a warning (``accuracy_gap``).

    ``framework="keras"``: Keras 3 (``model.keras``); seeded with deterministic TensorFlow ops, so the
    same data and parameters give the same model. ``framework="torch"``: torchvision's MobileNetV2
    in channels-last layout, bf16 autocast on a GPU, a DataLoader with pinned memory feeding uint8
    images that are normalised on the device. It writes ``model.onnx``, served with onnxruntime by
    ``predict.images``, ``deploy.local``/``serve``, KServe's ``onnx`` format and Watson ML's
    ``onnxruntime`` types, and ``model.pt`` (weights, for ``metric.robustness``). Needs the ``torch``
    extra. Both take (N, size, size, 3) in [-1, 1] and output class probabilities.

    :param images: Output of ``transform.dicom_to_images`` (``<label>/*.png`` and ``index.csv``).
    :param epochs: Number of passes over the training images.
    :param batch_size: Images per gradient step.
    :param image_size: Input width and height of the network in pixels (at least 32).
    :param alpha: Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, ...).
    :param learning_rate: Peak Adam learning rate of the one-cycle schedule.
    :param seed: Random seed for weights initialisation and shuffling.
    :param framework: ``keras`` (TensorFlow/Keras 3) or ``torch`` (PyTorch, the fast path on GPUs).
    :param mixed_precision: ``torch`` on a GPU: compute in bfloat16 (autocast), keep weights in float32.
    :param holdout: When ``index.csv`` has a ``split`` column (``filter.spark_cohort_split``), train on its
        ``train`` images only and score the saved model on its ``test`` images; false: train on every image.
    :param model: Folder with ``model.keras`` (keras) or ``model.onnx`` + ``model.pt`` (torch), ``labels.json``
        and ``history.json``.
    """
    if image_size < 32:
        raise ClaimedError(f"image_size: MobileNetV2 needs at least 32 pixels, got {image_size}")
    if epochs < 1:
        raise ClaimedError(f"epochs: must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ClaimedError(f"batch_size: must be at least 1, got {batch_size}")
    splits = _splits(images) if holdout else set()
    pixels, y, classes, _ = load_gray_images(images, image_size, split="train" if splits else "")
    if len(classes) < 2:
        raise ClaimedError(f"images: need at least two labels to train a classifier, found {classes}")
    out = Path(model)
    out.mkdir(parents=True)
    settings = dict(epochs=epochs, batch_size=batch_size, alpha=alpha, learning_rate=learning_rate, seed=seed)
    info = {"classes": classes, "image_size": image_size, "framework": framework, "alpha": alpha}
    (out / LABELS).write_text(json.dumps(info))
    if framework == "torch":
        history, device = _train_torch(pixels, y, len(classes), out, mixed_precision=mixed_precision, **settings)
    else:
        history, device = _train_keras(pixels, y, len(classes), out, **settings)
    (out / "history.json").write_text(json.dumps(history))
    result = {
        "train_accuracy": history["accuracy"][-1],
        "train_loss": history["loss"][-1],
        "device": device,
        "images_per_second": history["images_per_second"][-1],
        "train_images": len(y),
    }
    result.update(_score_saved_model(out, images, pixels, y, "test" in splits, result["train_accuracy"]))
    return result


GAP = 0.05  # a saved model this much below the training accuracy is reported as a warning


def _splits(images: str) -> set[str]:
    """The values of the ``split`` column of ``index.csv`` (none without one)."""
    from claimed_airflow.core.tables import read_table

    path = Path(images) / INDEX
    index = read_table(path, name="images index") if path.exists() else None
    return set() if index is None or SPLIT not in index.columns else set(index[SPLIT].astype(str))


def _score_saved_model(folder: Path, images: str, pixels, y, held_out: bool, train_accuracy: float) -> dict:
    """The saved model, loaded as ``predict.images`` loads it, scored in inference mode on the training images
    and, with a split, on the test images; a warning when it is far below the accuracy seen in training."""
    import numpy as np

    from claimed_airflow.core.imaging import network_input

    network = ImageClassifier(folder)

    def accuracy(gray, labels) -> float:
        batches = [network.predict(network_input(gray[i : i + 64])) for i in range(0, len(gray), 64)]
        return float((np.concatenate(batches).argmax(axis=1) == labels).mean())

    scores = {"saved_train_accuracy": accuracy(pixels, y)}
    scores["accuracy_gap"] = train_accuracy - scores["saved_train_accuracy"]
    if scores["accuracy_gap"] > GAP:
        log.warning(
            "train.mobilenet_v2: the SAVED model scores %.3f on the training images in inference mode, %.3f "
            "below the %.3f measured while training: the deployed model does not predict what was learned",
            scores["saved_train_accuracy"],
            scores["accuracy_gap"],
            train_accuracy,
        )
    if held_out:
        test, y_test, _, _ = load_gray_images(images, network.image_size, network.classes, split="test")
        scores["test_accuracy"] = accuracy(test, y_test)
        scores["test_images"] = len(y_test)
    return scores


def _train_keras(pixels, y, n_classes, out, *, epochs, batch_size, alpha, learning_rate, seed):
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    _deterministic_ops()
    size = pixels.shape[1]
    network = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, classes=n_classes)
    steps = epochs * math.ceil(len(pixels) / batch_size)
    warmup = _warmup_steps(steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(steps - warmup, 1), warmup_target=learning_rate, warmup_steps=warmup
    )  # the one-cycle schedule of _one_cycle
    network.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    progress = Progress("train.mobilenet_v2 epochs", epochs, interval=0)
    rates = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            rates.append(len(pixels) / (time.perf_counter() - self.start))
            progress.advance()

    x, shift = network_input(pixels), np.random.default_rng(seed)
    history: dict = {}
    for epoch in range(epochs):  # one fit per epoch: each sees its own augmented copy (the schedule runs on)
        fitted = network.fit(
            network_input(_augment(pixels, shift)),
            y,
            initial_epoch=epoch,
            epochs=epoch + 1,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[Epochs()],
        )
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
    # as update_bn in torch: each moving mean/variance becomes the average over the training batches
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for k, batch in enumerate(_statistics_batches(len(x), batch_size, seed)):
        for layer in norms:
            layer.momentum = k / (k + 1)  # 0 first: the previous (lagging) value is dropped
        network(x[batch], training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    network.save(out / "model.keras")
    history["images_per_second"] = rates
    return history, _keras_device()


def import_torch():
    """(torch, torchvision), safe in a process that has loaded TensorFlow.

    torchvision imports torch's compiler stack, which imports Triton when installed (CUDA builds),
    and Triton's LLVM crashes or hangs next to TensorFlow's (``import tensorflow; import triton``
    segfaults here). Nothing here compiles kernels, so with TensorFlow loaded Triton is hidden.
    """
    import sys

    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # import triton -> ImportError: torch treats it as not installed
    try:
        import torch
        import torchvision
    except ImportError:
        raise ClaimedError("framework: 'torch' needs PyTorch and torchvision (the torch extra)") from None
    return torch, torchvision


def _train_torch(pixels, y, n_classes, out, *, epochs, batch_size, alpha, learning_rate, seed, mixed_precision):
    import numpy as np

    torch, torchvision = import_torch()
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = True
    network = torchvision.models.mobilenet_v2(num_classes=n_classes, width_mult=alpha)
    network = network.to(device, memory_format=torch.channels_last)
    if len(pixels) < 2 or batch_size < 2:  # batch-norm learns from two images or more per step
        raise ClaimedError(
            f"torch training needs at least 2 images per batch: {len(pixels)} training images, batch_size {batch_size}"
        )
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    dataset = TensorDataset(torch.from_numpy(pixels), torch.from_numpy(y))
    # one index per batch: the loader slices whole batches of uint8 (no per-image collate) and pins them; a last
    # batch of one image cannot train batch-norm ("Expected more than 1 value per channel"): it is left out
    lone = len(pixels) % batch_size == 1
    batches = BatchSampler(
        RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)), batch_size, drop_last=lone
    )
    steps = epochs * len(batches)
    warmup = _warmup_steps(steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _one_cycle(step, steps, warmup))
    loss_function = torch.nn.CrossEntropyLoss()
    loader = DataLoader(dataset, sampler=batches, batch_size=None, pin_memory=cuda)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and mixed_precision)
    progress = Progress("train.mobilenet_v2 epochs", epochs, interval=0)
    history = {"loss": [], "accuracy": [], "images_per_second": []}
    network.train()
    shift = np.random.default_rng(seed)
    for _ in range(epochs):
        dataset.tensors = (torch.from_numpy(_augment(pixels, shift)), dataset.tensors[1])
        start = time.perf_counter()
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for x, target in loader:
            x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with autocast:
                logits = network(_normalise(x))
                loss = loss_function(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.detach() * len(target)
            correct += (logits.argmax(dim=1) == target).sum()
        history["loss"].append(float(total_loss) / len(dataset))  # the only host sync of the epoch
        history["accuracy"].append(float(correct) / len(dataset))
        history["images_per_second"].append(len(dataset) / (time.perf_counter() - start))
        progress.advance()
    # the running batch-norm statistics lag behind the weights (badly so after a short training):
    # recompute them over the training images so that the exported, eval-mode network is the one trained
    images = torch.from_numpy(pixels)
    batches = (
        _normalise(images[torch.from_numpy(batch)].to(device))
        for batch in _statistics_batches(len(images), batch_size, seed)
    )
    with autocast:
        torch.optim.swa_utils.update_bn(batches, network)
    export_servable(network.float().eval(), out)
    return history, torch.cuda.get_device_name(0) if cuda else "cpu"


def _augment(pixels, rng):
    """A training epoch's copy of the uint8 images (N, S, S): each mirrored left-right or not and shifted by up
    to a sixteenth of its size in each direction (edges repeated), so a small cohort is not learnt by heart."""
    import numpy as np

    count, size = len(pixels), pixels.shape[1]
    most = max(size // 16, 1)
    flips = rng.random(count) < 0.5
    offsets = rng.integers(0, 2 * most + 1, (count, 2))
    padded = np.pad(pixels, ((0, 0), (most, most), (most, most)), mode="edge")
    out = np.empty_like(pixels)
    for i, (dy, dx) in enumerate(offsets):
        image = padded[i, dy : dy + size, dx : dx + size]
        out[i] = image[:, ::-1] if flips[i] else image
    return out


def _warmup_steps(steps: int) -> int:
    """Warm-up steps of the one-cycle schedule: a tenth of all."""
    return steps // 10


def _one_cycle(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up from 0 to 1, then cosine annealing to 0 (as Keras' CosineDecay)."""
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, steps - warmup) / max(steps - warmup, 1)))


def _statistics_batches(count: int, batch_size: int, seed: int) -> list:
    """The batches (index arrays) batch-norm statistics are recomputed over: shuffled (seeded), as in training,
    so that no batch holds one class only; the training batch size, whole batches only (a last image alone
    has no variance), unless there are fewer images than one batch."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(count)
    whole = max(count // batch_size, 1)
    return [order[i * batch_size : (i + 1) * batch_size] if whole > 1 else order for i in range(whole)]


def _normalise(x):
    """uint8 (N, S, S) on the device -> float (N, 3, S, S) channels-last in [-1, 1], as ``imaging.network_input``."""
    import torch

    x = x.unsqueeze(1).expand(-1, 3, -1, -1).float().div_(INPUT_SCALE).sub_(INPUT_OFFSET)
    return x.contiguous(memory_format=torch.channels_last)


def _nhwc(network, probabilities: bool = False):
    """``network`` (NCHW in, logits out) taking the Keras model's input, float32 (N, S, S, 3) in [-1, 1]."""
    import torch

    class NHWC(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logits = self.inner(x.permute(0, 3, 1, 2))
            return torch.softmax(logits, dim=1) if probabilities else logits

    return NHWC(network).eval()


def export_servable(network, folder: Path) -> None:
    """Write a trained torchvision MobileNetV2 as ``model.pt`` (its weights, see :func:`load_torch_network`)
    and ``model.onnx`` (input ``input`` float32 (N, S, S, 3) in [-1, 1], output ``probabilities``).

    ``labels.json`` must be in ``folder`` already. The ONNX export needs torch's compiler stack, which
    Triton crashes in a process that has loaded TensorFlow (see :func:`import_torch`), as ``dag.test()``
    may have for an earlier Keras task: there it runs in a fresh interpreter (3 to 4 s more), else here.
    """
    import subprocess
    import sys

    import torch

    torch.save(network.to("cpu").state_dict(), folder / "model.pt")
    if "tensorflow" not in sys.modules:
        try:
            export_onnx(folder)
        except Exception as exc:  # noqa: BLE001 - the exporter's own errors, named as in a fresh interpreter
            raise ClaimedError(f"model: the ONNX export failed: {type(exc).__name__}: {exc}") from exc
        return
    code = "import sys; from claimed_airflow.components.train.mobilenet_v2 import export_onnx; export_onnx(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ClaimedError(f"model: the ONNX export failed: {reason}")


def export_onnx(folder: str | Path) -> None:
    """``model.onnx`` from the ``model.pt`` and ``labels.json`` of ``folder``."""
    import torch

    info = json.loads((Path(folder) / LABELS).read_text())
    size = info["image_size"]
    torch.onnx.export(
        load_torch_network(folder, probabilities=True),
        (torch.zeros(2, size, size, 3),),
        str(Path(folder) / "model.onnx"),
        input_names=["input"],
        output_names=["probabilities"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )


def load_torch_network(folder: str | Path, probabilities: bool = False):
    """The PyTorch twin of a ``model.onnx`` folder: logits (or probabilities) of float32 (N, S, S, 3) in
    [-1, 1], in eval mode."""
    torch, torchvision = import_torch()
    info = json.loads((Path(folder) / LABELS).read_text())
    network = torchvision.models.mobilenet_v2(num_classes=len(info["classes"]), width_mult=info["alpha"])
    network.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    return _nhwc(network, probabilities)


def _keras_device() -> str:
    try:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    except ImportError:
        return "cpu"


def _deterministic_ops() -> None:
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except ImportError:
        pass
