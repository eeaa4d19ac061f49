"""Training engine and checkpoints: schedule, determinism, evaluation, resume, safe files, CLI.

Everything runs on tiny random data and tiny models, so the whole file takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pooltools.train as train_module
from pooltools.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
)
from pooltools.models import build_model
from pooltools.train import (
    TrainConfig,
    WarmupCosine,
    evaluate,
    main,
    param_groups,
    train,
)

TINY = {"widths": [4, 8], "convs_per_stage": 1}
TIME_KEYS = ("epoch_time", "wall_time")


def tiny_config(**overrides) -> TrainConfig:
    """A tiny plain run (no augmentation, no label smoothing, no flip averaging): the loop's
    behaviour, not the recipe's."""
    settings = {"model": "base", "model_kwargs": dict(TINY), "epochs": 3, "batch_size": 16,
                "lr": 0.05, "seed": 0, "augment": False, "label_smoothing": 0.0,
                "tta": False}  # fmt: skip
    settings.update(overrides)
    return TrainConfig(**settings)


def tensor_loaders(n: int = 48, batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    """Noisy images whose brightness gives the class away (so a tiny net can learn them); the
    train loader shuffles with its own seeded generator."""
    g = torch.Generator().manual_seed(123)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 3, 32, 32, generator=g) + (y.float() - 4.5).view(n, 1, 1, 1) / 2
    train_loader = DataLoader(
        TensorDataset(x, y), batch_size, shuffle=True, generator=torch.Generator().manual_seed(7)
    )
    return train_loader, DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32)


def data_loaders() -> tuple[DataLoader, DataLoader]:
    """pooltools.data's loaders (seeded shuffle) on tiny uint8 arrays, as train() makes them."""
    data = pytest.importorskip("pooltools.data")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 10
    stats = data.channel_stats(images)
    return (
        data.make_loader(images, labels, 16, train=True, stats=stats, seed=0),
        data.make_loader(images[:20], labels[:20], 20, stats=stats),
    )


def without_times(history):
    return [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in history]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Interrupt(Exception):
    """Raised from a callback to simulate a crash after a checkpoint was saved."""


def interrupt_after(epoch: int):
    def callback(record):
        if record["epoch"] == epoch:
            raise Interrupt

    return callback


# ------------------------------------------------------------------------- recipe pieces


def test_warmup_cosine_hand_values():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=123.0)
    schedule = WarmupCosine(optimizer, peak=1.0, warmup_steps=2, total_steps=6)
    lrs = [schedule.step() for _ in range(6)]
    expected = [
        0.5,
        1.0,
        1.0,
        (1 + math.cos(math.pi / 4)) / 2,
        0.5,
        (1 - math.cos(math.pi / 4)) / 2,
    ]
    assert lrs == pytest.approx(expected)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected[-1])
    restored = WarmupCosine(optimizer, peak=9.0, warmup_steps=0, total_steps=1)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(3) == pytest.approx(expected[3]) and restored.steps_taken == 6
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        WarmupCosine(optimizer, 1.0, warmup_steps=7, total_steps=6)


def test_weight_decay_only_on_conv_and_linear_weights():
    model = build_model("allconv", **TINY)
    decay, no_decay = param_groups(model, 5e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    expected = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert decayed == {f"{n}.weight" for n in expected}
    assert {names[id(p)] for p in no_decay["params"]} == set(names.values()) - decayed
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (5e-4, 0.0)


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="unknown model 'vgg'; allowed names are base"):
        TrainConfig(model="vgg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        TrainConfig(label_smoothing=1.0)
    config = tiny_config(model_kwargs={"widths": (4, 8)})
    plain = config.to_dict()
    assert plain["model_kwargs"]["widths"] == [4, 8]  # tuples become lists (weights_only, JSON)
    assert TrainConfig.from_dict(plain).to_dict() == plain
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({**plain, "optimiser": "adam"})


def test_evaluate_equals_a_direct_computation():
    torch.manual_seed(0)
    model = build_model("base", **TINY).eval()
    _, test_loader = tensor_loaders()
    x, y = test_loader.dataset.tensors
    with torch.no_grad():
        logits = model(x)
        flipped = model(torch.flip(x, dims=[3]))
    plain = evaluate(model, test_loader, channels_last=False)
    assert plain["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert plain["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    probs = (logits.softmax(1) + flipped.softmax(1)) / 2
    tta = evaluate(model, test_loader, tta=True)
    assert tta["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-5)
    assert tta["acc"] == pytest.approx((probs.argmax(1) == y).float().mean().item())


# ------------------------------------------------------------------------------ training


def test_same_seed_gives_identical_runs_and_another_seed_does_not():
    a = train(tiny_config(), *tensor_loaders(), progress=False)
    b = train(tiny_config(), *tensor_loaders(), progress=False)
    c = train(tiny_config(seed=1), *tensor_loaders(), progress=False)
    assert without_times(a.history) == without_times(b.history)
    assert same_weights(a.model, b.model)
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def test_history_records_every_epoch_and_the_model_learns():
    result = train(tiny_config(epochs=6, lr=0.1, warmup_epochs=0.5), *tensor_loaders(),
                   progress=False)  # fmt: skip
    history = result.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                               "epoch_time", "wall_time"}  # fmt: skip
    walls = [h["wall_time"] for h in history]
    assert walls == sorted(walls) and all(h["epoch_time"] > 0 for h in history)
    # 3 steps per epoch, warm-up 2 steps (0.5 epoch rounded), cosine over the other 16
    schedule = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))]), 0.1, 2, 18)
    lrs = [schedule.step() for _ in range(18)]
    assert [h["lr"] for h in history] == pytest.approx(lrs[2::3])
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.3  # learns the brightness code
    assert result.final["test_acc"] == history[-1]["test_acc"] and not result.stopped_early
    assert result.model.stage1.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not result.model.training


def test_time_budget_plans_the_run_after_the_first_epoch():
    # a budget smaller than one epoch: the first epoch is timed, the plan shrinks to 1 epoch
    result = train(tiny_config(epochs=5, time_budget=1e-6), *tensor_loaders(), progress=False)
    assert result.planned_epochs == 1 and len(result.history) == 1

    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))])
    schedule = WarmupCosine(optimizer, 0.1, warmup_steps=3, total_steps=100 * 3)
    config = tiny_config(epochs=100, time_budget=10.0)
    history = [{"wall_time": 3.0}]  # first epoch took 3 s: 3 epochs fit into 10 s
    assert train_module._replan(config, history, 1, 100, schedule, 3) == (3, False)
    assert schedule.total_steps == 9  # the cosine now ends with epoch 3
    history.append({"wall_time": 8.0})  # epoch 2 was slow: a third (~4 s) would overshoot
    assert train_module._replan(config, history, 2, 3, schedule, 3) == (2, True)


# ------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("loaders, augment", [(tensor_loaders, False), (data_loaders, True)])
def test_resume_after_an_interruption_equals_a_straight_run(tmp_path, loaders, augment):
    config = tiny_config(epochs=4, augment=augment)
    straight = train(config, *loaders(), progress=False)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(config, *loaders(), checkpoint_path=path, progress=False, callback=interrupt_after(2))
    saved = load_checkpoint(path)
    assert saved["training_state"]["epoch"] == 2 and not saved["training_state"]["finished"]
    assert saved["training_state"]["rng"]["torch"].dtype == torch.uint8
    torch.manual_seed(999)  # a fresh process would have a different global RNG state
    resumed = train(config, *loaders(), checkpoint_path=path, progress=False)
    assert resumed.resumed_from_epoch == 2
    assert without_times(resumed.history) == without_times(straight.history)
    assert same_weights(resumed.model, straight.model)


def test_augment_is_seeded_resumable_and_changes_the_run(tmp_path):
    config = tiny_config(epochs=3, augment=True)
    straight = train(config, *tensor_loaders(), progress=False)
    again = train(config, *tensor_loaders(), progress=False)
    assert without_times(again.history) == without_times(straight.history)
    plain = train(tiny_config(epochs=3), *tensor_loaders(), progress=False)
    assert without_times(plain.history) != without_times(straight.history)  # it did augment
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(config, *tensor_loaders(), checkpoint_path=path, progress=False,
              callback=interrupt_after(1))  # fmt: skip
    resumed = train(config, *tensor_loaders(), checkpoint_path=path, progress=False)
    assert without_times(resumed.history) == without_times(straight.history)
    assert same_weights(resumed.model, straight.model)


def test_a_format_1_checkpoint_resumes_as_if_never_stopped(tmp_path):
    """Runs interrupted before the recipe refactor (format 1: ``batch_augment`` beside
    ``augment``, the old defaults for missing fields) continue bit for bit."""
    config = tiny_config(epochs=3, augment=True)
    straight = train(config, *tensor_loaders(), progress=False)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(config, *tensor_loaders(), checkpoint_path=path, progress=False,
              callback=interrupt_after(1))  # fmt: skip
    checkpoint = torch.load(path, weights_only=True)
    old = {**checkpoint["config"], "batch_augment": True}
    del old["channels_last"]  # a field that format 1 left out meant its old default (True)
    torch.save({**checkpoint, "format_version": 1, "config": old}, path)
    resumed = train(config, *tensor_loaders(), checkpoint_path=path, progress=False)
    assert without_times(resumed.history) == without_times(straight.history)
    assert same_weights(resumed.model, straight.model)


@pytest.mark.parametrize(
    "saved, expected",
    [
        ({"augment": True, "batch_augment": True}, {"augment": True, "tta": False, "lr": 0.1}),
        ({"augment": False, "batch_augment": False}, {"augment": False}),
        ({"augment": False}, {"augment": False, "epochs": 10, "label_smoothing": 0.0}),
    ],
)
def test_upgrade_config_reads_format_1_with_its_own_defaults(saved, expected):
    upgraded = train_module.upgrade_config({"model": "base", **saved}, format_version=1)
    assert "batch_augment" not in upgraded
    assert {k: upgraded[k] for k in expected} == expected
    assert train_module.upgrade_config(dict(upgraded), format_version=2) == upgraded


def test_upgrade_config_refuses_per_image_augmentation_runs():
    with pytest.raises(ValueError, match="per-image augmentation in the data loader"):
        train_module.upgrade_config({"augment": True, "batch_augment": False}, format_version=1)
    with pytest.raises(ValueError, match="per-image augmentation"):
        train_module.upgrade_config({"model": "base"}, format_version=1)  # augment defaulted on


def test_the_recipe_cannot_be_changed_by_accident():
    with pytest.raises(dataclasses.FrozenInstanceError):
        train_module.RECIPE.epochs = 3  # type: ignore[misc]
    mine = train_module.recipe("base", 1)
    mine.model_kwargs["widths"] = [8, 16, 16]
    assert train_module.RECIPE.model_kwargs["widths"] == [32, 64, 128]
    assert train_module.recipe("strided").model_kwargs["widths"] == [32, 64, 128]


def test_from_dict_tells_format_1_from_its_fields():
    old = {**train_module.recipe("base").to_dict(), "batch_augment": True}
    del old["augment"]  # format 1 wrote both; augment defaulted to True there
    assert TrainConfig.from_dict(old) == train_module.recipe("base")
    assert TrainConfig.from_dict(train_module.recipe("base").to_dict()) == train_module.recipe("base")


def test_recipe_is_the_configs_defaults_and_the_clis(monkeypatch):
    monkeypatch.delenv("POOLTOOLS_QUICK", raising=False)
    assert train_module.recipe("strided", 2) == TrainConfig(model="strided", seed=2)
    parse = train_module._parser().parse_args
    config, quick = train_module.config_from_args(parse(["--model", "strided", "--seed", "2"]))
    assert not quick and config == train_module.recipe("strided", 2)


def test_finished_run_is_loaded_not_retrained(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    first = train(tiny_config(epochs=2), *tensor_loaders(), checkpoint_path=path, progress=False)
    assert load_checkpoint(path)["training_state"]["optimizer"] is None  # small final file

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(train_module, "_train_epoch", no_training)
    again = train(tiny_config(epochs=2), *tensor_loaders(), checkpoint_path=path, progress=False)
    assert again.history == first.history and same_weights(again.model, first.model)
    assert again.final == first.final


def test_resume_refuses_a_different_config_unless_told_to_start_over(tmp_path):
    path = tmp_path / "run.pt"
    train(tiny_config(epochs=1), *tensor_loaders(), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match=r"different config \(lr: 0.05 -> 0.02\).*resume=False"):
        train(tiny_config(epochs=1, lr=0.02), *tensor_loaders(), checkpoint_path=path,
              progress=False)  # fmt: skip
    train(tiny_config(epochs=1, lr=0.02), *tensor_loaders(), checkpoint_path=path, resume=False,
          progress=False)  # fmt: skip
    assert load_checkpoint(path)["config"]["lr"] == 0.02


@pytest.fixture
def finished_run(tmp_path):
    path = tmp_path / "allconv.pt"
    result = train(tiny_config(model="allconv", epochs=1), *tensor_loaders(), checkpoint_path=path,
                   progress=False)  # fmt: skip
    return path, result


def test_checkpoint_round_trip(finished_run):
    path, result = finished_run
    model, checkpoint = load_model(path)
    assert not model.training and model.variant == "allconv"
    assert same_weights(model, result.model.to(memory_format=torch.contiguous_format))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-6)
    assert checkpoint["format_version"] == FORMAT_VERSION
    assert checkpoint["history"] == result.history and checkpoint["final"] == result.final
    assert checkpoint["config"] == result.config.to_dict()
    env = checkpoint["environment"]
    assert env["torch"] == torch.__version__ and {"device", "threads", "platform",
                                                  "cpu_count"} <= set(env)  # fmt: skip
    assert checkpoint["training_state"]["finished"] and checkpoint["training_state"]["epoch"] == 1
    # a readable history beside it
    saved_json = json.loads(path.with_suffix(".json").read_text())
    assert saved_json["history"] == json.loads(json.dumps(result.history))
    assert saved_json["architecture"]["name"] == "allconv"


def test_atomic_write_survives_an_interrupted_save(finished_run, monkeypatch):
    path, result = finished_run
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # the worst case: the user hits Ctrl-C mid-write

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, build_model("base", **TINY), config={}, history=[])
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["allconv.json", "allconv.pt"]
    monkeypatch.undo()
    assert load_model(path)[1]["architecture"]["name"] == "allconv"


def test_refuses_a_checkpoint_of_another_architecture(finished_run):
    path, _ = finished_run
    with pytest.raises(ValueError, match=r"holds a 'allconv'.*but a 'base' model was expected"):
        load_model(path, expected_variant="base")
    with pytest.raises(ValueError, match=r"checkpoint of 'allconv'.*into a model of 'base'"):
        load_weights(build_model("base", **TINY), path)
    wider = build_model("allconv", widths=[4, 16], convs_per_stage=1)
    with pytest.raises(ValueError, match=r"'allconv'.*into a model of 'allconv'.*tensor shapes"):
        load_weights(wider, path)


def test_per_stage_convs_round_trip_through_a_checkpoint(tmp_path):
    model = build_model("convpool", widths=[4, 8], convs_per_stage=[1, 2])
    save_checkpoint(tmp_path / "m.pt", model, config={}, history=[])
    loaded, _ = load_model(tmp_path / "m.pt")
    assert loaded.arch_kwargs["convs_per_stage"] == [1, 2] and same_weights(loaded, model)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign dict"])
def test_refuses_a_corrupt_or_foreign_file_and_says_how_to_regenerate(finished_run, damage):
    path, _ = finished_run
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a checkpoint" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="python -m pooltools.train --model allconv") as info:
        load_model(path)
    assert "corrupt" in str(info.value) or "not a pooltools checkpoint" in str(info.value)
    assert isinstance(info.value, ValueError)


_EXECUTED: list[str] = []


def _record_execution(tag: str) -> str:
    _EXECUTED.append(tag)
    return tag


class _Payload:
    def __reduce__(self):
        return _record_execution, ("pickle code ran",)


def test_loading_runs_no_pickle_code(tmp_path):
    path = tmp_path / "base.pt"
    torch.save({"format_version": 1, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="not a pooltools checkpoint"):
        load_checkpoint(path)
    assert _EXECUTED == []


def test_save_refuses_values_weights_only_could_not_read(tmp_path):
    model = build_model("base", **TINY)
    with pytest.raises(TypeError, match=r"config\['seed'\].*int64"):
        save_checkpoint(tmp_path / "x.pt", model, config={"seed": np.int64(3)}, history=[])
    assert not list(tmp_path.iterdir())


def test_refuses_an_unknown_format_version(finished_run):
    path, _ = finished_run
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint format {FORMAT_VERSION + 1}"):
        load_checkpoint(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")


# ----------------------------------------------------------------------------------- CLI


def test_cli_arguments_become_a_config(monkeypatch):
    monkeypatch.delenv("POOLTOOLS_QUICK", raising=False)
    parse = train_module._parser().parse_args
    config, quick = train_module.config_from_args(parse(["--model", "strided"]))
    assert not quick and (config.model, config.epochs, config.subset) == ("strided", 11, None)
    config, quick = train_module.config_from_args(parse(["--model", "base", "--quick"]))
    assert quick and (config.epochs, config.subset, config.test_subset) == (1, 2000, 1000)
    config, _ = train_module.config_from_args(
        parse(
            ["--model", "blurpool", "--time-budget", "600", "--widths", "32,96,192", "--seed", "2"]
        )  # fmt: skip
    )
    assert config.time_budget == 600 and config.epochs == 1000  # the budget decides
    assert config.model_kwargs == {"widths": [32, 96, 192]} and config.seed == 2
    for text, parsed in (("3", 3), ("1,2,2", [1, 2, 2]), ("2,", None)):
        if parsed is None:
            with pytest.raises(SystemExit):
                parse(["--model", "base", "--convs-per-stage", text])
            continue
        config, _ = train_module.config_from_args(
            parse(["--model", "base", "--convs-per-stage", text])
        )
        assert config.model_kwargs == {"widths": [32, 64, 128], "convs_per_stage": parsed}
    assert train_module.checkpoint_name("base", 2, quick=True) == "base-seed2-quick"
    with pytest.raises(SystemExit):
        parse(["--model", "resnet"])


def _tiny_image_folder(root: Path) -> Path:
    from PIL import Image

    from pooltools.data import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 2)):
        for name in CIFAR10_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_main_trains_a_quick_run_on_a_tiny_image_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pooltools.data")
    monkeypatch.setenv("POOLTOOLS_CIFAR10_DIR", str(_tiny_image_folder(tmp_path / "cifar")))
    monkeypatch.chdir(tmp_path)  # the decoded-data cache goes to ./data
    out = tmp_path / "checkpoints"
    argv = ["--model", "base", "--quick", "--subset", "20", "--batch-size", "8",
            "--widths", "4,8", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "base: test acc" in capsys.readouterr().out
    model, checkpoint = load_model(out / "base-quick.pt", expected_variant="base")
    assert checkpoint["config"]["subset"] == 20 and checkpoint["config"]["test_subset"] == 20
    assert len(checkpoint["history"]) == 1 and (out / "base-quick.json").is_file()
