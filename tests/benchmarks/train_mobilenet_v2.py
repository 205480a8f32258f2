"""Benchmark: train.mobilenet_v2 (framework=torch, and keras when installed) against a plain PyTorch loop.

Same model (torchvision MobileNetV2), same synthetic images, same batch size, same device, same run.
The plain loop is the fastest feed there is: all images normalised once and kept on the device,
batches picked by index. The component reads the images from PNGs, then trains through its pinned
DataLoader of uint8 batches normalised on the device; its rate is the one it reports for its last
epoch (the training loop alone: no PNG loading, no export). Both use bf16 autocast on a GPU.

    .venv/bin/python tests/benchmarks/train_mobilenet_v2.py [--images 2048] [--size 224] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def synthetic_folder(folder: Path, count: int, size: int) -> Path:
    """``count`` random grayscale PNGs in two labels plus ``index.csv``, like transform.dicom_to_images writes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["image,label"]
    for i in range(count):
        label = "a" if i % 2 else "b"
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / label / f"{i:05d}.png", compress_level=1
        )
        rows.append(f"{label}/{i:05d}.png,{label}")
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    return folder


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


def component(images: Path, root: Path, framework: str, epochs: int, batch: int, size: int, alpha: float) -> dict:
    from claimed_airflow.core.runner import run

    args = {"images": str(images), "framework": framework, "epochs": epochs, "batch_size": batch}
    args.update(image_size=size, alpha=alpha, learning_rate=1e-3)
    result = run("train.mobilenet_v2", args, root=str(root))
    result["rates"] = json.loads((Path(result["model"]) / "history.json").read_text())["images_per_second"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--keras", action="store_true", help="also time framework=keras")
    args = parser.parse_args()
    import torch

    from claimed_airflow.components.train.image_classifier import load_gray_images

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    shape = f"{args.images} images {args.size}x{args.size}, batch {args.batch}, alpha {args.alpha}"
    print(f"device: {device}; torch {torch.__version__}; {shape}")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        images = synthetic_folder(Path(tmp) / "images", args.images, args.size)
        pixels, labels, _, _ = load_gray_images(str(images), args.size)
        results = {"plain PyTorch loop": plain_loop(pixels, labels, args.epochs, args.batch, args.alpha, True)}
        ours = component(images, Path(tmp) / "torch", "torch", args.epochs, args.batch, args.size, args.alpha)
        results["train.mobilenet_v2 framework=torch"] = ours["rates"]
        results["plain PyTorch loop (again)"] = plain_loop(pixels, labels, args.epochs, args.batch, args.alpha, True)
        if args.keras:
            keras_run = component(images, Path(tmp) / "keras", "keras", args.epochs, args.batch, args.size, args.alpha)
            results["train.mobilenet_v2 framework=keras"] = keras_run["rates"]
    baseline = (results["plain PyTorch loop"][-1] + results["plain PyTorch loop (again)"][-1]) / 2
    for name, rates in results.items():
        per_epoch = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name}: last epoch {rates[-1]:.0f} images/s ({rates[-1] / baseline:.2f}x); epochs: {per_epoch}")


if __name__ == "__main__":
    main()
