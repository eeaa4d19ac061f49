"""Recorded test-set predictions: equal to evaluate()'s, round-trip exactly, refused when stale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pooltools import data
from pooltools.checkpoint import parse_checkpoint_name, save_checkpoint
from pooltools.models import VARIANTS, build_model
from pooltools.predictions import (
    Predictions,
    StalePredictionsError,
    load_predictions,
    predict,
    record_checkpoint,
    save_predictions,
)
from pooltools.robustness import shift_consistency
from pooltools.train import checkpoint_name, evaluate

TINY = {"widths": [4, 8], "convs_per_stage": 1}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1, 12])
def test_parse_checkpoint_name_inverts_checkpoint_name(variant, seed):
    assert parse_checkpoint_name(checkpoint_name(variant, seed)) == (variant, seed)


@pytest.mark.parametrize("stem", ["maxpool", "base-seed0", "base-seed01", "base-seedx", "base-quick"])
def test_parse_checkpoint_name_refuses_what_checkpoint_name_never_writes(stem):
    with pytest.raises(ValueError, match="is not a checkpoint name"):
        parse_checkpoint_name(stem)


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    return images, labels


@pytest.mark.parametrize("tta", [False, True])
def test_predict_gives_the_accuracy_evaluate_reports(tta):
    torch.manual_seed(0)
    model = build_model("base", **TINY).eval()
    images, labels = _images()
    stats = data.channel_stats(images)
    loader = data.make_loader(images, labels, batch_size=16, stats=stats)
    pred = predict(model, data.to_tensor_batch(images, stats), tta=tta, batch_size=24)
    assert (pred == labels).mean() == pytest.approx(evaluate(model, loader, tta=tta)["acc"])


def _checkpoint(tmp_path, stem="base-seed1", seed=0):
    torch.manual_seed(seed)
    variant, _ = parse_checkpoint_name(stem)
    model = build_model(variant, **TINY)
    path = tmp_path / f"{stem}.pt"
    save_checkpoint(path, model, config={"tta": True}, history=[], final=None, training_state=None)
    return path, model


def test_recorded_predictions_round_trip_and_match_a_fresh_evaluation(tmp_path):
    path, model = _checkpoint(tmp_path)
    images, labels = _images()
    x = data.to_tensor_batch(images, data.channel_stats(images))
    record = record_checkpoint(path, x)
    assert (record.variant, record.seed) == ("base", 1)
    np.testing.assert_array_equal(record.pred, predict(model.eval(), x, tta=True))
    assert record.consistent().mean() == shift_consistency(model, x, max_shift=4, seed=0)
    out = save_predictions([record], labels, tmp_path / "predictions.npz")
    loaded, loaded_labels = load_predictions(out, checkpoint_dir=tmp_path)
    np.testing.assert_array_equal(loaded_labels, labels)
    back = loaded["base-seed1"]
    assert isinstance(back, Predictions) and back.checkpoint_sha256 == record.checkpoint_sha256
    for field in ("pred", "shift_a", "shift_b"):
        np.testing.assert_array_equal(getattr(back, field), getattr(record, field))
    assert back.correct(labels).mean() == (record.pred == labels).mean()


def test_a_record_of_a_changed_checkpoint_is_refused_by_name(tmp_path):
    path, _ = _checkpoint(tmp_path)
    images, labels = _images()
    record = record_checkpoint(path, data.to_tensor_batch(images, data.channel_stats(images)))
    out = save_predictions([record], labels, tmp_path / "predictions.npz")
    _checkpoint(tmp_path, seed=1)  # retrained: same name, other weights
    with pytest.raises(StalePredictionsError, match="base-seed1 do not match.*make predictions"):
        load_predictions(out, checkpoint_dir=tmp_path)
    (tmp_path / "base-seed1.pt").unlink()
    with pytest.raises(StalePredictionsError, match="base-seed1"):
        load_predictions(out, checkpoint_dir=tmp_path)
