"""The committed checkpoints in data/checkpoints/ (every variant and seed: ``NAME.pt`` for seed 0,
``NAME-seedS.pt`` for seed S): named as pooltools.train names them, loadable, small, and their
recorded test accuracy reproduced on the test set (when the JPEG copy of CIFAR-10 they were
trained on is here). Runs still training are skipped, saying so."""

from __future__ import annotations

import json
import os

import pytest

from pooltools import data
from pooltools.checkpoint import load_checkpoint, load_model, parse_checkpoint_name
from pooltools.config import data_dir
from pooltools.train import checkpoint_name, evaluate

CHECKPOINTS = data_dir() / "checkpoints"
COMMITTED = sorted(p for p in CHECKPOINTS.glob("*.pt") if "-quick" not in p.stem)
SIZE_LIMIT_MIB = 30  # issue 10: data/checkpoints/ under 30 MiB in all


def test_committed_checkpoints_are_named_runs_with_histories_and_small():
    assert COMMITTED, f"no checkpoints in {CHECKPOINTS}"
    for path in COMMITTED:
        variant, seed = parse_checkpoint_name(path.stem)
        record = json.loads(path.with_suffix(".json").read_text())
        config = record["config"]
        assert (config["model"], config["seed"]) == (variant, seed), (
            f"{path.name} holds model {config['model']!r} seed {config['seed']}, but its name says "
            f"{variant!r} seed {seed}"
        )
        assert checkpoint_name(variant, seed) == path.stem
        assert record["architecture"]["name"] == variant
        history = record["history"]
        assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    total = sum(p.stat().st_size for p in CHECKPOINTS.iterdir() if p.is_file())
    assert total < SIZE_LIMIT_MIB * 2**20, (
        f"{CHECKPOINTS.name}/ takes {total / 2**20:.1f} MiB; the limit is {SIZE_LIMIT_MIB} MiB"
    )


def _jpeg_copy_available() -> bool:
    return bool(os.environ.get(data.ENV_VAR)) and "ImageFolder" in data.describe_source()


@pytest.fixture(scope="module")
def test_loader():
    """The test split, normalized with the training split's statistics as in training."""
    train_images, _ = data.load_cifar10("train")
    test_images, test_labels = data.load_cifar10("test")
    stats = data.channel_stats(train_images)
    return data.make_loader(test_images, test_labels, batch_size=500, stats=stats)


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_recorded_accuracy_is_reproduced(path, request):
    ckpt = load_checkpoint(path)
    state = ckpt.get("training_state") or {}
    if not state.get("finished"):
        pytest.skip(
            f"{path.stem} is still training (epoch {state.get('epoch')} of "
            f"{state.get('planned_epochs')}); resume it with `make train`"
        )
    if not _jpeg_copy_available():
        pytest.skip(
            "the checkpoints were trained and evaluated on the JPEG copy of CIFAR-10; set "
            f"{data.ENV_VAR} to it to reproduce their accuracy"
        )
    variant, _ = parse_checkpoint_name(path.stem)
    model, ckpt = load_model(path, expected_name=variant)
    loader = request.getfixturevalue("test_loader")
    measured = evaluate(model, loader, tta=ckpt["config"]["tta"])["acc"]
    recorded = ckpt["final"]["test_acc"]
    assert abs(measured - recorded) <= 0.001, (
        f"{path.stem}: recorded {recorded:.2%}, measured {measured:.2%}"
    )
