"""Benchmark: train.mobilenet_v2 (framework=torch, and keras when installed) against a plain PyTorch loop.

Same model (torchvision MobileNetV2), same synthetic uint8 images, same batch size, same device, same
run. The plain loop is the fastest feed there is: all images normalised once and kept on the device,
batches picked by index. The component's training function gets the same uint8 array (what it
reads from the image folder) and trains through its pinned DataLoader of uint8 batches normalised
on the device; its rate is the one it reports for its last epoch (the training loop alone, not the
ONNX export). Both use bf16 autocast on a GPU.

    .venv/bin/python tests/benchmarks/train_mobilenet_v2.py [--images 2048] [--size 224] [--batch 128] [--keras]

Needs only torch, torchvision, numpy and docstring_parser (pure Python) besides this repository, so
it runs on a GPU machine that has PyTorch: ``PYTHONPATH=.:<folder with docstring_parser>``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def synthetic(count: int, size: int):
    """``count`` random uint8 grayscale images and their labels (two classes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size), dtype=np.uint8), np.arange(count, dtype=np.int64) % 2


def plain_loop(pixels, labels, epochs: int, batch: int, alpha: float, bf16: bool) -> list[float]:
    """Images/s per epoch of a textbook PyTorch loop with the data already normalised on the device."""
    import torch
    import torchvision

    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = True
    network = torchvision.models.mobilenet_v2(num_classes=2, width_mult=alpha).to(device)
    network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    x = torch.from_numpy(pixels).to(device).float().div_(127.5).sub_(1.0).unsqueeze(1).expand(-1, 3, -1, -1)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels).to(device)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        for index in torch.randperm(len(x), device=device).split(batch):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and bf16):
                loss = torch.nn.functional.cross_entropy(network(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        rates.append(len(x) / (time.perf_counter() - start))
    return rates


def component(pixels, labels, framework: str, epochs: int, batch: int, alpha: float) -> list[float]:
    """Images/s per epoch of train.mobilenet_v2's training function for ``framework``."""
    from claimed_airflow.components.train import mobilenet_v2

    settings = dict(epochs=epochs, batch_size=batch, alpha=alpha, learning_rate=1e-3, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        (Path(out) / "labels.json").write_text(
            json.dumps({"classes": ["a", "b"], "image_size": pixels.shape[1], "alpha": alpha})
        )
        if framework == "torch":
            mobilenet_v2.export_servable = lambda *args: None  # timed: the training, not the ONNX export
            history, _ = mobilenet_v2._train_torch(pixels, labels, 2, Path(out), mixed_precision=True, **settings)
        else:
            history, _ = mobilenet_v2._train_keras(pixels, labels, 2, Path(out), **settings)
    return history["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--keras", action="store_true", help="also time framework=keras")
    args = parser.parse_args()
    from claimed_airflow.components.train.mobilenet_v2 import import_torch

    torch, _ = import_torch()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    shape = f"{args.images} images {args.size}x{args.size}, batch {args.batch}, alpha {args.alpha}"
    print(f"device: {device}; torch {torch.__version__}; {shape}")
    pixels, labels = synthetic(args.images, args.size)
    runs = (args.epochs, args.batch, args.alpha)
    results = {"plain PyTorch loop": plain_loop(pixels, labels, *runs, True)}
    results["train.mobilenet_v2 framework=torch"] = component(pixels, labels, "torch", *runs)
    results["plain PyTorch loop (again)"] = plain_loop(pixels, labels, *runs, True)
    if args.keras:
        results["train.mobilenet_v2 framework=keras"] = component(pixels, labels, "keras", *runs)
    baseline = (results["plain PyTorch loop"][-1] + results["plain PyTorch loop (again)"][-1]) / 2
    for name, rates in results.items():
        per_epoch = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name}: last epoch {rates[-1]:.0f} images/s ({rates[-1] / baseline:.2f}x); epochs: {per_epoch}")


if __name__ == "__main__":
    main()
