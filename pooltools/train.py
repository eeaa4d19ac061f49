"""Train one model variant on CIFAR-10: the loop, the schedule, evaluation, resume, and a CLI.

The recipe, :data:`RECIPE` (``TrainConfig``'s defaults; every committed checkpoint was trained
with it): SGD with Nesterov momentum; weight decay on conv/linear weights only (not on BatchNorm
parameters or biases); a per-step schedule that warms the learning rate up linearly and then
follows a cosine to zero; label smoothing; a seeded random crop + flip of every batch; test
accuracy with flip averaging; channels_last tensors. Same config and seed on the CPU ->
identical losses, and an interrupted run resumed from its checkpoint continues exactly as if it
had never stopped.

Time budget: with ``time_budget`` set, the first epoch is timed (training, evaluation and saving)
and the run is re-planned to ``min(epochs, floor(budget / first_epoch_time))`` epochs, with the
cosine stretched over the new total, so the schedule still ends at zero. Warm-up only depends on
its own length, so the first epoch is the same as without a budget if ``warmup_epochs >= 1``. If
later epochs run slower (a busy machine) and the next one would overshoot, training stops
gracefully after the last epoch that fits (``stopped_early``). A budgeted run is therefore not
deterministic in its number of epochs; everything else is.

CLI: ``python -m pooltools.train --model base [--seed S] [--epochs N] [--time-budget S] [--quick]``
(the recipe unless told otherwise; ``make train`` runs it for every variant and seed).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from pooltools.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_weights,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    to_plain,
)
from pooltools.config import data_dir, get_device, is_quick, seed_everything
from pooltools.data import random_crop_flip
from pooltools.models import VARIANTS, build_model, evaluating

__all__ = [
    "RECIPE",
    "recipe",
    "TrainConfig",
    "WarmupCosine",
    "param_groups",
    "evaluate",
    "train",
    "checkpoint_name",
    "config_from_args",
    "main",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and so is compared before resuming one).

    ``epochs`` is the length of the run, or its upper bound when ``time_budget`` (seconds) is
    set. ``batch_size`` and ``subset``/``test_subset`` (a seeded stratified subset of that many
    images; ``None``: the whole split) are only used when :func:`train` builds the CIFAR-10
    loaders itself; loaders passed in are used as they are. ``augment`` crops and flips every
    training batch in the loop (:func:`pooltools.data.random_crop_flip`, from its own seeded
    generator), whatever the loader. ``tta`` evaluates with flip averaging. The defaults are the
    recipe (:data:`RECIPE`).
    """

    model: str = "base"  # the variant's name (the field keeps its name: checkpoints store it)
    model_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"widths": [32, 64, 128], "convs_per_stage": [1, 2, 2]}
    )
    epochs: int = 11
    batch_size: int = 128
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    seed: int = 0
    time_budget: float | None = None
    subset: int | None = None
    test_subset: int | None = None
    augment: bool = True
    tta: bool = True
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
    def from_dict(cls, data: dict[str, Any], format_version: int | None = None) -> TrainConfig:
        """The config a checkpoint of ``format_version`` stored (see :func:`upgrade_config`;
        ``None``: told from the fields)."""
        data = upgrade_config(data, format_version)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data)


RECIPE = TrainConfig()
"""The one recipe of every committed checkpoint; ``make train``, the speed probe of notebook 0
and the model card read it from here. :func:`recipe` gives it for one variant and seed."""

# TrainConfig's defaults in checkpoint format 1: what a field missing from such a file's config
# meant when it was written. Never change these.
_LEGACY_DEFAULTS: dict[str, Any] = {
    "model_kwargs": {}, "epochs": 10, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
    "weight_decay": 5e-4, "warmup_epochs": 1.0, "label_smoothing": 0.0, "seed": 0,
    "time_budget": None, "subset": None, "test_subset": None, "augment": True,
    "batch_augment": False, "tta": False, "channels_last": True,
}  # fmt: skip


def recipe(variant: str, seed: int = 0) -> TrainConfig:
    """:data:`RECIPE` for one variant and seed: the config ``make train`` trains (a fresh
    object: changing its ``model_kwargs`` leaves the recipe alone)."""
    return TrainConfig(model=variant, seed=seed)


def upgrade_config(saved: dict[str, Any], format_version: int | None = None) -> dict[str, Any]:
    """A stored config in today's fields. Format 2 is today's. In format 1 a missing field takes
    the default it had then, and the retired ``batch_augment`` flag folds into ``augment``
    (batch crop + flip is the only augmentation now; a run that used the per-image transforms
    of the data loader is refused, since this code can neither continue nor reproduce it).
    ``format_version=None`` tells the format from the fields: only format 1 has ``batch_augment``.
    """
    if format_version is None:
        format_version = 1 if "batch_augment" in saved else FORMAT_VERSION
    if format_version >= 2:
        return dict(saved)
    config = {**_LEGACY_DEFAULTS, **saved}
    batch = config.pop("batch_augment")
    if config["augment"] and not batch:
        raise ValueError(
            "this run was trained with per-image augmentation in the data loader, which "
            "pooltools no longer has (batch crop + flip in the loop is the one augmentation "
            "now); retrain it with `make train`"
        )
    config["augment"] = bool(batch)
    return config


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
    total_loss, correct, count = 0.0, 0, 0
    with evaluating(model):
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
    if count == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return {"loss": total_loss / count, "acc": correct / count}


def make_cifar_loaders(
    config: TrainConfig, root: str | Path | None = None
) -> tuple[DataLoader, DataLoader]:
    """CIFAR-10 train (seeded shuffle) and test loaders; :func:`train` augments the batches.

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
        train_x, train_y, config.batch_size, train=True, stats=stats, seed=config.seed
    )
    test_loader = data.make_loader(test_x, test_y, 512, train=False, stats=stats)
    return train_loader, test_loader


def _loader_generators(loader: DataLoader) -> list[torch.Generator]:
    """The distinct torch Generators a loader draws from (its own and its sampler's)."""
    found: list[torch.Generator] = []
    for g in (getattr(loader, "generator", None), getattr(loader.sampler, "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


# --------------------------------------------------------------------------------------------
# the loop


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum (when ``momentum > 0``), decay on weights only."""
    return torch.optim.SGD(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; returns ``(loss, logits)``. The speed probe of notebook 0
    times exactly this."""
    logits = model(x)  # (B, num_classes)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


@dataclass
class _Run:
    """What a run carries from epoch to epoch, and what its checkpoint saves to resume it.

    ``generators``: every torch Generator the run draws from (the train loader's, then the
    batch augmentation's), saved and restored together.
    """

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: WarmupCosine
    generators: list[torch.Generator]
    augment: torch.Generator | None
    device: torch.device
    steps_per_epoch: int
    planned_epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    stopped_early: bool = False
    wall_offset: float = 0.0
    final: dict[str, Any] | None = None  # set when a finished run is loaded

    @property
    def finished(self) -> bool:
        return self.epoch >= self.planned_epochs

    def result(self, path: Path | None, resumed_from: int) -> TrainResult:
        final = self.final or _final_metrics(self.history, self.model, self.config.tta)
        return TrainResult(self.model.eval(), self.config, self.history, final, path,
                           self.planned_epochs, self.stopped_early, resumed_from)  # fmt: skip


def _setup(
    config: TrainConfig, model: nn.Module, train_loader: DataLoader, device: torch.device
) -> _Run:
    """Model on its device, optimizer, schedule and generators of a fresh run."""
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    optimizer = make_optimizer(model, config)
    steps_per_epoch = len(train_loader)
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total)
    schedule = WarmupCosine(optimizer, config.lr, warmup_steps=warmup, total_steps=total)
    generators = _loader_generators(train_loader)
    augment = None
    if config.augment:  # its own stream, saved and restored with the loader's
        augment = torch.Generator().manual_seed(config.seed + 2**32)
        generators.append(augment)
    return _Run(config, model, optimizer, schedule, generators, augment, device,
                steps_per_epoch, planned_epochs=config.epochs)  # fmt: skip


def _resume(run: _Run, path: Path) -> bool:
    """Continue ``run`` from the checkpoint at ``path``; return whether that run had finished
    (then only its weights and history are loaded)."""
    checkpoint = load_checkpoint(path)  # on the CPU: RNG states must stay there
    saved = upgrade_config(checkpoint["config"], checkpoint["format_version"])
    diff = _config_diff(saved, run.config.to_dict())
    if diff:
        raise ValueError(
            f"{path} holds a run with a different config ({'; '.join(diff)}); pass "
            f"resume=False to overwrite it, or use another checkpoint path"
        )
    load_weights(run.model, checkpoint)
    run.history = list(checkpoint["history"])
    state = checkpoint.get("training_state") or {}
    run.epoch = int(state.get("epoch", len(run.history)))
    run.planned_epochs = int(state.get("planned_epochs", run.config.epochs))
    run.wall_offset = run.history[-1]["wall_time"] if run.history else 0.0
    run.stopped_early = bool(state.get("stopped_early"))
    if state.get("finished"):
        run.final = dict(checkpoint["final"])
        return True
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"], run.generators)
    return False


def _train_epoch(run: _Run, loader: DataLoader, bar: Any) -> tuple[float, float, float]:
    """One pass over ``loader``; returns (mean loss, accuracy, last lr). With augmentation on,
    every batch is randomly cropped and flipped first."""
    run.model.train()
    total_loss, correct, count, lr = 0.0, 0, 0, float("nan")
    for x, y in loader:
        if run.augment is not None:
            x = random_crop_flip(x, run.augment)  # (B, 3, 32, 32)
        x, y = _to_device(x, run.device, run.config.channels_last), y.to(run.device)
        lr = run.schedule.step()
        loss, logits = train_step(run.model, run.optimizer, x, y, run.config.label_smoothing)
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
    """What differs between an (upgraded) stored config and the current one."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]  # fmt: skip


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
    run = _setup(config, model, train_loader, device)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and resume and path.exists() and _resume(run, path):
        return run.result(path, run.epoch)
    resumed_from = run.epoch
    _run_epochs(run, train_loader, test_loader, path, progress, callback)
    if not run.history:
        raise RuntimeError("training ran no epoch")
    return run.result(path, resumed_from)


def _run_epochs(
    run: _Run,
    train_loader: DataLoader,
    test_loader: DataLoader,
    path: Path | None,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Train, evaluate, record, re-plan (with a time budget), save and report, epoch by epoch."""
    from tqdm.auto import tqdm  # here, so notebook 0 can report a missing tqdm instead of failing

    config = run.config
    run_start = time.perf_counter()
    epoch_bar = tqdm(total=run.planned_epochs, initial=run.epoch, desc=config.model,
                     unit="epoch", disable=not progress)  # fmt: skip
    try:
        while run.epoch < run.planned_epochs:
            epoch_start = time.perf_counter()
            with tqdm(total=run.steps_per_epoch, desc=f"epoch {run.epoch + 1}", unit="batch",
                      leave=False, disable=not progress) as batch_bar:  # fmt: skip
                train_loss, train_acc, lr = _train_epoch(run, train_loader, batch_bar)
            metrics = evaluate(run.model, test_loader, config.tta, run.device, config.channels_last)
            run.epoch += 1
            record = {
                "epoch": run.epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": metrics["loss"],
                "test_acc": metrics["acc"],
                "lr": lr,
                "epoch_time": time.perf_counter() - epoch_start,
                "wall_time": run.wall_offset + time.perf_counter() - run_start,
            }
            run.history.append(record)
            if config.time_budget is not None:
                run.planned_epochs, run.stopped_early = _replan(
                    config, run.history, run.epoch, run.planned_epochs, run.schedule,
                    run.steps_per_epoch,
                )  # fmt: skip
                epoch_bar.total = run.planned_epochs
            if path is not None:
                _save(path, run)
            epoch_bar.update(1)
            epoch_bar.set_postfix(
                loss=f"{train_loss:.3f}", test_acc=f"{metrics['acc']:.3f}", refresh=False
            )
            if callback is not None:
                callback(dict(record))
    finally:
        epoch_bar.close()


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


def _save(path: Path, run: _Run) -> None:
    """The run after its latest epoch; a finished run keeps no resume state (small files)."""
    finished = run.finished
    training_state = {
        "epoch": run.epoch,
        "planned_epochs": run.planned_epochs,
        "finished": finished,
        "stopped_early": run.stopped_early,
        "optimizer": None if finished else run.optimizer.state_dict(),
        "scheduler": None if finished else run.schedule.state_dict(),
        "rng": None if finished else rng_state(run.generators),
    }
    save_checkpoint(
        path,
        run.model,
        config=run.config.to_dict(),
        history=run.history,
        final=_final_metrics(run.history, run.model, run.config.tta) if finished else None,
        training_state=training_state,
        device=run.device,
    )


# --------------------------------------------------------------------------------------------
# CLI


def checkpoint_name(variant: str, seed: int = 0, quick: bool = False) -> str:
    """File stem of a run: ``base``, ``base-seed1``; quick runs get ``-quick`` so they never
    overwrite a real checkpoint."""
    return variant + (f"-seed{seed}" if seed != 0 else "") + ("-quick" if quick else "")


def _csv(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def _int_or_ints(text: str) -> int | list[int]:
    """``"2"`` -> ``2``; ``"1,2,2"`` -> ``[1, 2, 2]`` (one value per stage)."""
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 and "," not in text else values


def _parser() -> argparse.ArgumentParser:
    """Long (about 60 lines) because it is one flat list of ``add_argument`` calls."""
    p = argparse.ArgumentParser(
        prog="python -m pooltools.train",
        description="Train one pooling variant on CIFAR-10 and save a checkpoint (resumable).",
    )
    p.add_argument("--model", required=True, choices=VARIANTS, help="variant to train")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs (default {RECIPE.epochs}; 1 with --quick; the upper bound with --time-budget)",
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
    p.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    p.add_argument("--lr", type=float, default=RECIPE.lr)
    p.add_argument("--label-smoothing", type=float, default=RECIPE.label_smoothing)
    p.add_argument(
        "--widths",
        type=lambda s: [int(w) for w in s.split(",")],
        default=None,
        help=f"comma-separated stage widths (default {_csv(RECIPE.model_kwargs['widths'])})",
    )
    p.add_argument(
        "--convs-per-stage",
        type=_int_or_ints,
        default=None,
        help="convs in every stage (2), or one count per stage "
        f"(default {_csv(RECIPE.model_kwargs['convs_per_stage'])})",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=RECIPE.tta,
        help="evaluate with horizontal-flip averaging (the recipe: on)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=RECIPE.augment,
        help="random crop + flip of every training batch (the recipe: on)",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """Turn parsed CLI arguments into a config; returns ``(config, quick)``."""
    quick = args.quick or is_quick()
    model_kwargs = dict(RECIPE.model_kwargs)
    if args.widths is not None:  # another backbone: the recipe's per-stage counts may not fit
        model_kwargs = {"widths": args.widths}
    if args.convs_per_stage is not None:
        model_kwargs["convs_per_stage"] = args.convs_per_stage
    if args.epochs is not None:
        epochs = args.epochs
    elif quick:
        epochs = 1
    else:
        epochs = 1000 if args.time_budget is not None else RECIPE.epochs
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
        augment=args.augment,
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
