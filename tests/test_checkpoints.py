"""The committed checkpoints in data/checkpoints/ (every variant and seed: ``NAME.pt`` for seed 0,
``NAME-seedS.pt`` for seed S): named as pooltools.train names them, loadable, small, and their
recorded test accuracy and their recorded test-set predictions (``predictions.npz``, which notebook 3
reads) reproduced on the test set (when the JPEG copy of CIFAR-10 they were trained on is here).
Runs still training are skipped, saying so."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest
import torch

from pooltools import data
from pooltools.checkpoint import load_checkpoint, load_model, parse_checkpoint_name
from pooltools.config import data_dir
from pooltools.predictions import FILE_NAME, load_predictions, normalized_test_images, predict
from pooltools.train import checkpoint_name

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
def test_images():
    """The test split, normalized with the training split's statistics as in training."""
    return normalized_test_images()


@pytest.fixture(scope="module")
def recorded_predictions():
    """The recorded predictions; refused (StalePredictionsError) if any checkpoint changed."""
    return load_predictions(CHECKPOINTS / FILE_NAME, checkpoint_dir=CHECKPOINTS)[0]


def test_every_finished_checkpoint_has_recorded_predictions(recorded_predictions):
    finished = [
        p.stem for p in COMMITTED if (load_checkpoint(p)["training_state"] or {}).get("finished")
    ]
    missing = sorted(set(finished) - set(recorded_predictions))
    assert not missing, f"no recorded predictions for {missing}: run `make predictions`"


# CI's budget is 15 minutes for everything on a 2-core CPU. Seed 0 of every fast variant is
# re-evaluated on all 10,000 test images. The full-resolution networks (about ten fast ones to
# evaluate each) and the other seeds are re-evaluated on a stratified 2,000-image subset: there their
# predictions must match the record and their accuracy the record's on the same images, and the
# record (tied to the checkpoint's bytes by its SHA-256) must give the recorded accuracy on all
# 10,000 images.
SUBSET_FOR = {"unpooled": 2000, "dilated": 2000}
SUBSET_FOR_OTHER_SEEDS = 2000


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)  # conftest runs tests on one thread; a full evaluation wants both
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_recorded_accuracy_and_predictions_are_reproduced(path, request):
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
    variant, seed = parse_checkpoint_name(path.stem)
    model, ckpt = load_model(path, expected_variant=variant)
    images, labels = request.getfixturevalue("test_images")
    record = request.getfixturevalue("recorded_predictions")[path.stem]
    recorded = ckpt["final"]["test_acc"]
    from_record = record.correct(labels).mean()
    assert abs(from_record - recorded) <= 0.001, (
        f"{path.stem}: recorded {recorded:.2%}, its recorded predictions give {from_record:.2%}"
    )
    n = SUBSET_FOR.get(variant, SUBSET_FOR_OTHER_SEEDS if seed != 0 else None)
    index = (
        np.arange(len(labels))
        if n is None
        else data.subset(np.arange(len(labels)), labels, n, seed=0)[0]
    )
    with _threads(2):
        pred = predict(model, images[index], tta=ckpt["config"]["tta"])  # as evaluate() does
    measured = (pred == labels[index]).mean()
    expected = recorded if n is None else record.correct(labels)[index].mean()
    assert abs(measured - expected) <= 0.001, (
        f"{path.stem}: recorded {expected:.2%} on these {len(index):,} images, measured {measured:.2%}"
    )
    agree = (pred == record.pred[index]).mean()
    assert agree >= 0.999, f"{path.stem}: only {agree:.2%} of its recorded predictions reproduced"
