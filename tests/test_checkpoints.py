"""The committed checkpoints in data/checkpoints/: loadable, small, and their recorded test
accuracy reproduced on the test set (when the JPEG copy of CIFAR-10 they were trained on is here)."""

from __future__ import annotations

import json
import os

import pytest

from pooltools import data
from pooltools.checkpoint import load_checkpoint, load_model
from pooltools.config import data_dir
from pooltools.models import VARIANTS
from pooltools.train import evaluate

CHECKPOINTS = data_dir() / "checkpoints"
COMMITTED = sorted(p for p in CHECKPOINTS.glob("*.pt") if "-quick" not in p.stem)


def test_committed_checkpoints_are_known_variants_with_histories_and_small():
    assert COMMITTED, f"no checkpoints in {CHECKPOINTS}"
    for path in COMMITTED:
        assert path.stem in VARIANTS, f"{path.name} is not one of {VARIANTS}"
        history = json.loads(path.with_suffix(".json").read_text())["history"]
        assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    total = sum(p.stat().st_size for p in COMMITTED)
    assert total < 10 * 2**20, f"checkpoints take {total / 2**20:.1f} MB; the limit is 10 MB"


def _jpeg_copy_available() -> bool:
    return bool(os.environ.get(data.ENV_VAR)) and "ImageFolder" in data.describe_source()


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_recorded_accuracy_is_reproduced(path):
    ckpt = load_checkpoint(path)
    if not ckpt["training_state"]["finished"]:
        state = ckpt["training_state"]
        pytest.skip(
            f"{path.stem} is still training (epoch {state['epoch']} of "
            f"{state['planned_epochs']}); resume it with `make train`"
        )
    if not _jpeg_copy_available():
        pytest.skip(
            "the checkpoints were trained and evaluated on the JPEG copy of CIFAR-10; set "
            f"{data.ENV_VAR} to it to reproduce their accuracy"
        )
    model, ckpt = load_model(path, expected_name=path.stem)
    train_images, _ = data.load_cifar10("train")
    test_images, test_labels = data.load_cifar10("test")
    stats = data.channel_stats(train_images)  # the training run normalized with these
    loader = data.make_loader(test_images, test_labels, batch_size=500, stats=stats)
    measured = evaluate(model, loader, tta=ckpt["config"]["tta"])["acc"]
    recorded = ckpt["final"]["test_acc"]
    assert abs(measured - recorded) <= 0.001, (
        f"{path.stem}: recorded {recorded:.2%}, measured {measured:.2%}"
    )
