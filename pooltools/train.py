"""Train one model variant on CIFAR-10: the loop, the schedule, evaluation, resume, and a CLI.

Recipe: SGD with Nesterov momentum; weight decay on conv/linear weights only (not on BatchNorm
parameters or biases); a per-step schedule that warms the learning rate up linearly and then
follows a cosine to zero; optional label smoothing; random crop + flip augmentation; channels_last
tensors on the CPU. Same config and seed on the CPU -> identical losses, and an interrupted run
resumed from its checkpoint continues exactly as if it had never stopped.

Time budget: with ``time_budget`` set, the first epoch is timed (training, evaluation and saving)
and the run is re-planned to ``min(epochs, floor(budget / first_epoch_time))`` epochs, with the
cosine stretched over the new total, so the schedule still ends at zero. Warm-up only depends on
its own length, so the first epoch is the same as without a budget if ``warmup_epochs >= 1``. If
later epochs run slower (a busy machine) and the next one would overshoot, training stops
gracefully after the last epoch that fits (``stopped_early``). A budgeted run is therefore not
deterministic in its number of epochs; everything else is.

CLI: ``python -m pooltools.train --model base [--epochs N] [--time-budget S] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pooltools.checkpoint import load_checkpoint, load_weights, save_checkpoint, to_plain
from pooltools.config import data_dir, get_device, is_quick, seed_everything
from pooltools.data import random_crop_flip
from pooltools.models import VARIANTS, build_model

__all__ = [
    "TrainConfig",
    "TrainResult",
    "WarmupCosine",
    "param_groups",
    "evaluate",
    "make_cifar_loaders",
    "train",
    "checkpoint_name",
    "config_from_args",
    "main",
]


@dataclass
class TrainConfig:
    """Everything that defines a training run (and so is compared before resuming one).

    ``epochs`` is the length of the run, or its upper bound when ``time_budget`` (seconds) is
    set. ``batch_size``, ``subset``/``test_subset`` (a seeded stratified subset of that many
    images; ``None``: the whole split) and ``augment`` are only used when :func:`train` builds
    the CIFAR-10 loaders itself; loaders passed in are used as they are. ``batch_augment`` moves
    the random crop + flip out of the loader's per-image torchvision transforms into the loop,
    one seeded batch at a time (:func:`pooltools.data.random_crop_flip`, same distribution,
    faster); it applies to any train loader, so pass un-augmented ones with it.
    """

    model: str = "base"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    time_budget: float | None = None
    subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    batch_augment: bool = False
    tta: bool = False
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.model not in VARIANTS:
            raise ValueError(
                f"unknown model {self.model!r}; allowed names are {', '.join(VARIANTS)}"
            )
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", self.lr > 0, "positive"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "non-negative"),
            ("warmup_epochs", self.warmup_epochs >= 0, "non-negative"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("time_budget", self.time_budget is None or self.time_budget > 0, "None or positive"),
            ("subset", self.subset is None or self.subset >= 1, "None or at least 1"),
            ("test_subset", self.test_subset is None or self.test_subset >= 1, "None or >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name} must be {allowed}, but got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples become lists), as stored in checkpoints and JSON."""
        return to_plain(asdict(self), "config")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`train` returns. ``history``: one dict per epoch (see :func:`train`)."""

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]]
    final: dict[str, Any]
    checkpoint_path: Path | None
    planned_epochs: int
    stopped_early: bool
    resumed_from_epoch: int


class WarmupCosine:
    """Per-step learning rate: linear warm-up to ``peak`` over ``warmup_steps``, then a cosine
    down to zero at ``total_steps``. ``step()`` sets the lr of the next optimizer step.

    Step ``t`` (0-based) gets ``peak * (t + 1) / warmup_steps`` during warm-up, then
    ``peak * (1 + cos(pi * (t - warmup_steps) / (total_steps - warmup_steps))) / 2``.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, peak: float, warmup_steps: int, total_steps: int
    ) -> None:
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, but got "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        self.optimizer, self.peak = optimizer, peak
        self.warmup_steps, self.total_steps, self.steps_taken = warmup_steps, total_steps, 0

    def lr_at(self, t: int) -> float:
        if t < self.warmup_steps:
            return self.peak * (t + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (t - self.warmup_steps) / span)
        return self.peak * 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self) -> float:
        """Set the optimizer's lr for the coming step and return it."""
        lr = self.lr_at(self.steps_taken)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.steps_taken += 1
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "steps_taken": self.steps_taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.peak, self.warmup_steps = float(state["peak"]), int(state["warmup_steps"])
        self.total_steps, self.steps_taken = int(state["total_steps"]), int(state["steps_taken"])


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: conv/linear weights (decayed) and BatchNorm weights + all biases (not).

    Decaying BN's scale or a bias only shrinks the network's output range, not its complexity,
    so the usual practice is to exempt them; the test is ``param.ndim > 1``.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    tta: bool = False,
    device: torch.device | str | None = None,
    channels_last: bool = True,
) -> dict[str, float]:
    """Mean cross-entropy (no label smoothing) and accuracy over ``loader``, in eval mode.

    ``tta=True`` averages the softmax of the image and of its horizontal mirror; the loss is
    then the negative log of that averaged probability.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        for x, y in loader:
            x, y = _to_device(x, device, channels_last), y.to(device)
            if tta:
                probs = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
                log_probs = probs.clamp_min(1e-12).log()
            else:
                log_probs = model(x).log_softmax(1)
            total_loss += F.nll_loss(log_probs, y, reduction="sum").item()
            correct += (log_probs.argmax(1) == y).sum().item()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return {"loss": total_loss / count, "acc": correct / count}


def make_cifar_loaders(
    config: TrainConfig, root: str | Path | None = None
) -> tuple[DataLoader, DataLoader]:
    """CIFAR-10 train (shuffled, augmented if ``config.augment``) and test loaders.

    Both are normalized with the channel statistics of the (subset of the) training images.
    """
    from pooltools import data

    train_x, train_y = data.load_cifar10("train", root)
    test_x, test_y = data.load_cifar10("test", root)
    if config.subset is not None:
        train_x, train_y = data.subset(train_x, train_y, config.subset, seed=config.seed)
    if config.test_subset is not None:
        test_x, test_y = data.subset(test_x, test_y, config.test_subset, seed=config.seed)
    stats = data.channel_stats(train_x)
    train_loader = data.make_loader(
        train_x,
        train_y,
        config.batch_size,
        train=True,
        augment=config.augment and not config.batch_augment,
        stats=stats,
        seed=config.seed,
    )
    test_loader = data.make_loader(test_x, test_y, 512, train=False, stats=stats)
    return train_loader, test_loader


# --------------------------------------------------------------------------------------------
# RNG state: everything random in a run, as plain data (uint8/int64 tensors, ints, lists)


def _loader_generators(loader: DataLoader) -> list[torch.Generator]:
    """The distinct torch Generators a loader draws from (its own and its sampler's)."""
    found: list[torch.Generator] = []
    for g in (getattr(loader, "generator", None), getattr(loader.sampler, "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def _rng_state(generators: Sequence[torch.Generator]) -> dict[str, Any]:
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),  # uint8 tensor
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generators: Sequence[torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    if len(state["generators"]) != len(generators):
        raise ValueError(
            f"the checkpoint saved {len(state['generators'])} data-loader generator states but "
            f"the train loader has {len(generators)}; resume with the same kind of loader"
        )
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# the loop


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: WarmupCosine,
    config: TrainConfig,
    device: torch.device,
    bar: tqdm,
    augment: torch.Generator | None = None,
) -> tuple[float, float, float]:
    """One pass over ``loader``; returns (mean loss, accuracy, last lr). With an ``augment``
    generator every batch is randomly cropped and flipped first (``config.batch_augment``)."""
    model.train()
    total_loss, correct, count, lr = 0.0, 0, 0, float("nan")
    for x, y in loader:
        if augment is not None:
            x = random_crop_flip(x, augment)  # (B, 3, 32, 32)
        x, y = _to_device(x, device, config.channels_last), y.to(device)
        lr = schedule.step()
        logits = model(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
        bar.update(1)
        bar.set_postfix(
            loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.3f}", refresh=False
        )
    if count == 0:
        raise ValueError(
            "the train loader yielded no batches (is drop_last on with a tiny dataset?)"
        )
    return total_loss / count, correct / count, lr


def _final_metrics(history: list[dict[str, Any]], model: nn.Module, tta: bool) -> dict[str, Any]:
    last = history[-1]
    return {
        "test_acc": last["test_acc"],
        "test_loss": last["test_loss"],
        "train_acc": last["train_acc"],
        "train_loss": last["train_loss"],
        "epochs": last["epoch"],
        "train_time": sum(h["epoch_time"] for h in history),
        "wall_time": last["wall_time"],
        "params": sum(p.numel() for p in model.parameters()),
        "tta": tta,
    }


def _config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs; a field that an older checkpoint lacks counts as its default value."""
    defaults = TrainConfig().to_dict()
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: {saved.get(k, defaults.get(k))!r} -> {current.get(k)!r}"
        for k in keys
        if saved.get(k, defaults.get(k)) != current.get(k)
    ]


def train(
    config: TrainConfig,
    train_loader: DataLoader | None = None,
    test_loader: DataLoader | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``config.model`` and return a :class:`TrainResult`.

    Loaders default to CIFAR-10 via :func:`make_cifar_loaders`. ``history`` gets one dict per
    epoch: ``epoch`` (1-based), ``train_loss`` (with label smoothing, running over the epoch,
    augmented images), ``train_acc``, ``test_loss`` (plain cross-entropy), ``test_acc``, ``lr``
    (of the epoch's last step), ``epoch_time`` (s, training + evaluation) and ``wall_time`` (s,
    cumulative since the run began, excluding time spent interrupted).

    With ``checkpoint_path`` the run is saved after every epoch (plus a ``.json`` history). If
    the file holds a run of the same config and ``resume`` is true, training continues from it
    with the optimizer, schedule and RNG states restored (a finished run is just loaded); a
    different config raises ``ValueError``; ``resume=False`` starts over and overwrites it.
    ``callback(record)`` is called after each epoch's save (raise in it to stop).
    ``progress=False`` disables the tqdm bars (epochs; batches with running loss and accuracy).
    """
    device = torch.device(device) if device is not None else get_device()
    seed_everything(config.seed)
    model = build_model(config.model, **config.model_kwargs)
    if (train_loader is None) != (test_loader is None):
        raise ValueError("pass both train_loader and test_loader, or neither (for CIFAR-10)")
    if train_loader is None or test_loader is None:
        train_loader, test_loader = make_cifar_loaders(config)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
    )
    steps_per_epoch = len(train_loader)
    schedule = WarmupCosine(
        optimizer,
        config.lr,
        warmup_steps=min(
            round(config.warmup_epochs * steps_per_epoch), config.epochs * steps_per_epoch
        ),
        total_steps=config.epochs * steps_per_epoch,
    )
    generators = _loader_generators(train_loader)
    augment = None
    if config.batch_augment:  # its own stream, saved and restored with the loader's
        augment = torch.Generator().manual_seed(config.seed + 2**32)
        generators.append(augment)
    history: list[dict[str, Any]] = []
    start_epoch, planned_epochs, wall_offset = 0, config.epochs, 0.0
    path = Path(checkpoint_path) if checkpoint_path is not None else None

    if path is not None and resume and path.exists():
        checkpoint = load_checkpoint(path)  # on the CPU: RNG states must stay there
        diff = _config_diff(checkpoint["config"], config.to_dict())
        if diff:
            raise ValueError(
                f"{path} holds a run with a different config ({'; '.join(diff)}); pass "
                f"resume=False to overwrite it, or use another checkpoint path"
            )
        load_weights(model, checkpoint)
        history = list(checkpoint["history"])
        state = checkpoint.get("training_state") or {}
        start_epoch = int(state.get("epoch", len(history)))
        planned_epochs = int(state.get("planned_epochs", config.epochs))
        wall_offset = history[-1]["wall_time"] if history else 0.0
        if state.get("finished"):
            return TrainResult(
                model.eval(),
                config,
                history,
                dict(checkpoint["final"]),
                path,
                planned_epochs,
                bool(state.get("stopped_early")),
                start_epoch,
            )
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], generators)
    resumed_from = start_epoch
    stopped_early = False

    run_start = time.perf_counter()
    epoch_bar = tqdm(
        total=planned_epochs,
        initial=start_epoch,
        desc=config.model,
        unit="epoch",
        disable=not progress,
    )
    try:
        epoch = start_epoch
        while epoch < planned_epochs:
            epoch_start = time.perf_counter()
            with tqdm(
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}",
                unit="batch",
                leave=False,
                disable=not progress,
            ) as batch_bar:
                train_loss, train_acc, lr = _train_epoch(
                    model, train_loader, optimizer, schedule, config, device, batch_bar, augment
                )
            metrics = evaluate(model, test_loader, config.tta, device, config.channels_last)
            epoch += 1
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": metrics["loss"],
                "test_acc": metrics["acc"],
                "lr": lr,
                "epoch_time": time.perf_counter() - epoch_start,
                "wall_time": wall_offset + time.perf_counter() - run_start,
            }
            history.append(record)
            if config.time_budget is not None:
                planned_epochs, stopped_early = _replan(
                    config, history, epoch, planned_epochs, schedule, steps_per_epoch
                )
                epoch_bar.total = planned_epochs
            finished = epoch >= planned_epochs
            if path is not None:
                _save(
                    path,
                    model,
                    config,
                    history,
                    finished,
                    stopped_early,
                    epoch,
                    planned_epochs,
                    optimizer,
                    schedule,
                    generators,
                    device,
                )
            epoch_bar.update(1)
            epoch_bar.set_postfix(
                loss=f"{train_loss:.3f}", test_acc=f"{metrics['acc']:.3f}", refresh=False
            )
            if callback is not None:
                callback(dict(record))
    finally:
        epoch_bar.close()
    if not history:
        raise RuntimeError("training ran no epoch")
    return TrainResult(
        model.eval(),
        config,
        history,
        _final_metrics(history, model, config.tta),
        path,
        planned_epochs,
        stopped_early,
        resumed_from,
    )


def _replan(
    config: TrainConfig,
    history: list[dict[str, Any]],
    epoch: int,
    planned_epochs: int,
    schedule: WarmupCosine,
    steps_per_epoch: int,
) -> tuple[int, bool]:
    """Fit the run into ``config.time_budget``: after epoch 1 set the total number of epochs
    (and stretch the cosine to it); later, stop before an epoch that would overshoot."""
    budget = float(config.time_budget)  # type: ignore[arg-type]
    elapsed = history[-1]["wall_time"]
    if epoch == 1:
        fit = max(1, min(config.epochs, math.floor(budget / max(elapsed, 1e-9))))
        schedule.total_steps = fit * steps_per_epoch
        schedule.warmup_steps = min(schedule.warmup_steps, schedule.total_steps)
        return fit, False
    mean_epoch = elapsed / epoch
    if epoch < planned_epochs and elapsed + mean_epoch > budget:
        return epoch, True
    return planned_epochs, False


def _save(
    path: Path,
    model: nn.Module,
    config: TrainConfig,
    history: list[dict[str, Any]],
    finished: bool,
    stopped_early: bool,
    epoch: int,
    planned_epochs: int,
    optimizer: torch.optim.Optimizer,
    schedule: WarmupCosine,
    generators: Sequence[torch.Generator],
    device: torch.device,
) -> None:
    training_state = {
        "epoch": epoch,
        "planned_epochs": planned_epochs,
        "finished": finished,
        "stopped_early": stopped_early,
        # a finished run needs no resume state: keep committed checkpoints small
        "optimizer": None if finished else optimizer.state_dict(),
        "scheduler": None if finished else schedule.state_dict(),
        "rng": None if finished else _rng_state(generators),
    }
    save_checkpoint(
        path,
        model,
        config=config.to_dict(),
        history=history,
        final=_final_metrics(history, model, config.tta) if finished else None,
        training_state=training_state,
        device=device,
    )


# --------------------------------------------------------------------------------------------
# CLI


def checkpoint_name(model: str, seed: int = 0, quick: bool = False) -> str:
    """File stem of a run: ``base``, ``base-seed1``; quick runs get ``-quick`` so they never
    overwrite a real checkpoint."""
    return model + (f"-seed{seed}" if seed != 0 else "") + ("-quick" if quick else "")


def _int_or_ints(text: str) -> int | list[int]:
    """``"2"`` -> ``2``; ``"1,2,2"`` -> ``[1, 2, 2]`` (one value per stage)."""
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 and "," not in text else values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pooltools.train",
        description="Train one pooling variant on CIFAR-10 and save a checkpoint (resumable).",
    )
    p.add_argument("--model", required=True, choices=VARIANTS, help="variant to train")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default 10; 1 with --quick; the upper bound with --time-budget)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fit the run into this many seconds (plans the schedule after epoch 1)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 epoch on a small seeded subset (also on with POOLTOOLS_QUICK=1)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="checkpoint folder (default: data/checkpoints)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="train on N images (stratified)")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on N test images")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    p.add_argument(
        "--widths",
        type=lambda s: [int(w) for w in s.split(",")],
        default=None,
        help="comma-separated stage widths, e.g. 32,64,128",
    )
    p.add_argument(
        "--convs-per-stage",
        type=_int_or_ints,
        default=None,
        help="convs in every stage (2), or one count per stage, e.g. 1,2,2",
    )
    p.add_argument("--tta", action="store_true", help="evaluate with horizontal-flip averaging")
    p.add_argument(
        "--batch-augment",
        action="store_true",
        help="random crop + flip per batch in the loop (faster than per-image torchvision)",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """Turn parsed CLI arguments into a config; returns ``(config, quick)``."""
    quick = args.quick or is_quick()
    model_kwargs: dict[str, Any] = {}
    if args.widths is not None:
        model_kwargs["widths"] = args.widths
    if args.convs_per_stage is not None:
        model_kwargs["convs_per_stage"] = args.convs_per_stage
    if args.epochs is not None:
        epochs = args.epochs
    elif quick:
        epochs = 1
    else:
        epochs = 1000 if args.time_budget is not None else TrainConfig.epochs
    subset = args.subset if args.subset is not None else (2000 if quick else None)
    test_subset = args.test_subset
    if test_subset is None and quick:
        test_subset = min(1000, subset) if subset is not None else 1000
    config = TrainConfig(
        model=args.model,
        model_kwargs=model_kwargs,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        time_budget=args.time_budget,
        subset=subset,
        test_subset=test_subset,
        tta=args.tta,
        batch_augment=args.batch_augment,
    )
    return config, quick


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    config, quick = config_from_args(args)
    out = args.out if args.out is not None else data_dir() / "checkpoints"
    path = out / f"{checkpoint_name(config.model, config.seed, quick)}.pt"
    result = train(
        config, checkpoint_path=path, resume=not args.no_resume, progress=not args.no_progress
    )
    final = result.final
    print(
        f"{config.model}: test acc {final['test_acc']:.2%} after {final['epochs']} epochs "
        f"({final['train_time']:.0f} s of training) -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
