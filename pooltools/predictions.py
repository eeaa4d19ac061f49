"""Every committed checkpoint's answer on every CIFAR-10 test image, recorded once.

Paired statistics (:mod:`pooltools.stats`) need each network's prediction on each test image,
and the two full-resolution networks take a minute or more to evaluate on a 2-core CPU. So
``make predictions`` (``python -m pooltools.tools.predictions``) evaluates each finished
checkpoint once and keeps, in ``data/checkpoints/predictions.npz``:

* ``pred``: the predicted class of each test image, with the checkpoint's own test-time flip
  averaging: the predictions behind its recorded test accuracy;
* ``shift_a``, ``shift_b``: its predictions for two seeded random shifts of up to 4 px
  (:func:`pooltools.robustness.shifted_predictions`), for shift consistency;
* the checkpoint's SHA-256, so a record that no longer matches its checkpoint is refused.

``tests/test_checkpoints.py`` re-evaluates every checkpoint and compares with these records.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pooltools import data
from pooltools.atomic import atomic_write
from pooltools.checkpoint import load_model, parse_checkpoint_name
from pooltools.robustness import shifted_predictions

__all__ = [
    "FILE_NAME",
    "Predictions",
    "StalePredictionsError",
    "sha256_of",
    "predict",
    "record_checkpoint",
    "save_predictions",
    "load_predictions",
    "normalized_test_images",
]

FILE_NAME = "predictions.npz"
MAX_SHIFT, SHIFT_SEED = 4, 0


class StalePredictionsError(ValueError):
    """A recorded prediction belongs to another version of its checkpoint."""


@dataclass(frozen=True)
class Predictions:
    """One checkpoint's predictions on the test set (``(N,)`` int arrays) and its identity."""

    stem: str
    variant: str
    seed: int
    checkpoint_sha256: str
    pred: np.ndarray
    shift_a: np.ndarray
    shift_b: np.ndarray

    def correct(self, labels: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: which test images it classifies correctly."""
        return self.pred == np.asarray(labels)

    def consistent(self) -> np.ndarray:
        """``(N,)`` bool: which images get the same class under both random shifts."""
        return self.shift_a == self.shift_b


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, tta: bool, batch_size: int = 500) -> np.ndarray:
    """Predicted classes of normalized ``(N, 3, H, W)`` images; ``tta`` averages the softmax of
    each image and its mirror, as :func:`pooltools.train.evaluate` does."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].contiguous(memory_format=torch.channels_last)
        probs = model(x).softmax(1)
        if tta:
            probs = (probs + model(x.flip(3)).softmax(1)) / 2
        out.append(probs.argmax(1))
    return torch.cat(out).numpy().astype(np.int8)


def record_checkpoint(path: str | Path, test_images: torch.Tensor) -> Predictions:
    """Evaluate one checkpoint on normalized test images (plain/TTA and shifted)."""
    path = Path(path)
    variant, seed = parse_checkpoint_name(path.stem)
    model, ckpt = load_model(path, expected_variant=variant)
    model = model.to(memory_format=torch.channels_last)
    a, b = shifted_predictions(model, test_images, MAX_SHIFT, SHIFT_SEED)
    return Predictions(
        path.stem,
        variant,
        seed,
        sha256_of(path),
        predict(model, test_images, tta=bool(ckpt["config"].get("tta"))),
        a.numpy().astype(np.int8),
        b.numpy().astype(np.int8),
    )


def save_predictions(records: Iterable[Predictions], labels: np.ndarray, path: str | Path) -> Path:
    """Write ``records`` and the test labels to one compressed ``.npz``, atomically."""
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(labels, dtype=np.int8)}
    index = {}
    for r in records:
        index[r.stem] = {"variant": r.variant, "seed": r.seed, "sha256": r.checkpoint_sha256}
        for field in ("pred", "shift_a", "shift_b"):
            arrays[f"{r.stem}/{field}"] = getattr(r, field)
    arrays["index"] = np.frombuffer(json.dumps(index, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load_predictions(
    path: str | Path, checkpoint_dir: str | Path | None = None
) -> tuple[dict[str, Predictions], np.ndarray]:
    """Read ``(records by stem, test labels)``.

    With ``checkpoint_dir``, every record's checkpoint must exist there with the recorded
    SHA-256: otherwise :class:`StalePredictionsError` names the records to re-make with
    ``make predictions``.
    """
    with np.load(Path(path)) as npz:
        index: Mapping[str, dict] = json.loads(npz["index"].tobytes().decode())
        records = {
            stem: Predictions(
                stem,
                meta["variant"],
                int(meta["seed"]),
                meta["sha256"],
                npz[f"{stem}/pred"],
                npz[f"{stem}/shift_a"],
                npz[f"{stem}/shift_b"],
            )  # fmt: skip
            for stem, meta in index.items()
        }
        labels = npz["labels"]
    if checkpoint_dir is not None:
        stale = [
            stem
            for stem, r in records.items()
            if not (Path(checkpoint_dir) / f"{stem}.pt").is_file()
            or sha256_of(Path(checkpoint_dir) / f"{stem}.pt") != r.checkpoint_sha256
        ]
        if stale:
            raise StalePredictionsError(
                f"the predictions recorded for {', '.join(stale)} do not match the checkpoints in "
                f"{checkpoint_dir}; re-record them with `make predictions`"
            )
    return records, labels


def normalized_test_images() -> tuple[torch.Tensor, np.ndarray]:
    """The CIFAR-10 test images normalized as in training (train-split statistics), and labels."""
    train_images, _ = data.load_cifar10("train")
    test_images, test_labels = data.load_cifar10("test")
    stats = data.channel_stats(train_images)
    return data.to_tensor_batch(test_images, stats), test_labels
