"""Save and load training checkpoints safely: atomic writes, weights-only reads, clear errors.

A checkpoint is a plain dict (tensors, dicts, lists, str, int, float, bool, None only), so
``torch.load(path, weights_only=True)`` reads it without running any pickle code::

    format_version  int
    architecture    {"name": variant, "kwargs": build_model kwargs, "hash": 16 hex digits}
    model_state     the model's state_dict
    config          the training config as a plain dict
    history         list of per-epoch dicts
    final           final metrics (dict) or None while training is unfinished
    environment     torch version, device, threads, platform, cpu count, python version
    training_state  {"epoch", "planned_epochs", "finished", "optimizer", "scheduler", "rng"}
                    (optimizer/scheduler/rng are None once finished, to keep the file small)

Beside ``NAME.pt`` a readable ``NAME.json`` holds the same minus the tensors.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pooltools.atomic import atomic_write, write_json_atomic
from pooltools.config import machine_info
from pooltools.models import VARIANTS, build_model

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "environment_info",
    "to_plain",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "load_model",
    "parse_checkpoint_name",
    "rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 2  # 2: the config has one augmentation flag (format 1 also had batch_augment)
READABLE_FORMATS = (1, 2)
_REQUIRED_KEYS = ("format_version", "architecture", "model_state", "config", "history")


class CheckpointError(ValueError):
    """A file that is not a readable pooltools checkpoint (corrupt, truncated or foreign)."""


def architecture_signature(model: nn.Module) -> dict[str, Any]:
    """``{"name", "kwargs", "hash"}``: the variant, how to rebuild it, and a hash of the names
    and shapes of everything in its state_dict (parameters and buffers)."""
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return {
        "name": str(getattr(model, "variant", type(model).__name__)),
        "kwargs": to_plain(getattr(model, "arch_kwargs", {})),
        "hash": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def environment_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """Where a checkpoint was made (:func:`pooltools.config.machine_info`; device default
    ``cpu``): enough to explain a timing or a last-digit difference."""
    return machine_info(device if device is not None else "cpu")


def to_plain(obj: Any, where: str = "value") -> Any:
    """Copy ``obj`` with tuples turned into lists, refusing anything ``weights_only`` can't read.

    Allowed: tensors, dicts with str/int keys, lists/tuples, str, int, float, bool, None.
    Raises ``TypeError`` naming the offending entry (e.g. a numpy scalar or a dataclass).
    """
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    for kind in (bool, int, float, str):  # subclasses (TorchVersion, IntEnum) become the base
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, Mapping):
        out = type(obj)() if isinstance(obj, dict) else {}
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"{where}: dict keys must be str or int, but got {key!r}")
            out[key] = to_plain(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"{where}: a checkpoint stores only tensors, dicts, lists, str, int, float, bool and "
        f"None, but got {type(obj).__name__} ({obj!r:.80}); convert it first (e.g. float(x))"
    )


def _json_safe(obj: Any) -> Any:
    """Tensors as short lists (or a placeholder), dict keys as strings: a readable JSON copy."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist() if obj.numel() <= 16 else f"<tensor {tuple(obj.shape)}>"
    return obj


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    config: Mapping[str, Any],
    history: list[Mapping[str, Any]],
    final: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
    device: torch.device | str | None = None,
    write_json: bool = True,
) -> Path:
    """Write ``path`` (and ``path.with_suffix(".json")``) atomically; return ``path``.

    ``config``, ``history``, ``final`` and ``training_state`` must be plain data (see
    :func:`to_plain`); a ``TypeError`` at save time beats an unreadable file at load time.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "architecture": to_plain(architecture_signature(model), "architecture"),
        "model_state": state,
        "config": to_plain(config, "config"),
        "history": to_plain(history, "history"),
        "final": to_plain(final, "final"),
        "environment": to_plain(environment_info(device), "environment"),
        "training_state": to_plain(training_state, "training_state"),
    }
    atomic_write(path, lambda f: torch.save(checkpoint, f))
    if write_json:
        summary = {
            k: v for k, v in checkpoint.items() if k not in ("model_state", "training_state")
        }
        ts = checkpoint["training_state"] or {}
        summary["training"] = {k: ts.get(k) for k in ("epoch", "planned_epochs", "finished")}
        write_json_atomic(path.with_suffix(".json"), _json_safe(summary))
    return path


def parse_checkpoint_name(stem: str) -> tuple[str, int]:
    """``"base"`` -> ``("base", 0)``, ``"allconv-seed2"`` -> ``("allconv", 2)``: the inverse of
    :func:`pooltools.train.checkpoint_name` for real (not ``-quick``) runs.

    Raises ``ValueError`` for a stem that names no variant of :data:`pooltools.models.VARIANTS`.
    """
    variant, sep, seed = stem.partition("-seed")
    if variant in VARIANTS and (not sep or (seed.isdigit() and seed == str(int(seed)) != "0")):
        return variant, int(seed) if sep else 0
    raise ValueError(
        f"{stem!r} is not a checkpoint name: expected VARIANT or VARIANT-seedN (N >= 1), with "
        f"VARIANT one of {', '.join(VARIANTS)}"
    )


def _regenerate_hint(path: Path) -> str:
    stem = path.stem
    name = next((v for v in sorted(VARIANTS, key=len, reverse=True) if stem.startswith(v)), None)
    command = f"python -m pooltools.train --model {name or '<variant>'} --out {path.parent}"
    return f"delete it and regenerate it with `{command}`"


def _reason(error: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only errors run long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line
    return lines[0] if lines else "no message"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check that it is one of ours.

    Raises ``FileNotFoundError`` if missing and :class:`CheckpointError` if the file is corrupt,
    truncated, not a checkpoint, or of an unknown format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train one with `python -m pooltools.train`"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip, pickle, EOF and weights-only errors all mean "unreadable"
        raise CheckpointError(
            f"{path} is corrupt, truncated or not a pooltools checkpoint "
            f"({type(e).__name__}: {_reason(e)}); "
            f"{_regenerate_hint(path)}"
        ) from e
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in _REQUIRED_KEYS):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a pooltools checkpoint (expected keys {list(_REQUIRED_KEYS)}, found "
            f"{found}); {_regenerate_hint(path)}"
        )
    if checkpoint["format_version"] not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path} has checkpoint format {checkpoint['format_version']!r}, but this pooltools "
            f"reads formats {', '.join(map(str, READABLE_FORMATS))}; {_regenerate_hint(path)}"
        )
    return checkpoint


def _describe(arch: Mapping[str, Any]) -> str:
    return f"{arch.get('name')!r} (kwargs {arch.get('kwargs')}, signature {arch.get('hash')})"


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any] | str | Path) -> nn.Module:
    """Load a checkpoint's weights into ``model`` after checking that the architectures match.

    Raises ``ValueError`` naming both architectures if the variant or the signature differ.
    """
    if not isinstance(checkpoint, Mapping):
        checkpoint = load_checkpoint(checkpoint)
    saved, mine = checkpoint["architecture"], architecture_signature(model)
    if saved.get("name") != mine["name"] or saved.get("hash") != mine["hash"]:
        saved_keys = set(checkpoint["model_state"])
        model_keys = set(model.state_dict())
        diff = sorted(saved_keys ^ model_keys)
        detail = f"; first differing entry: {diff[0]!r}" if diff else "; tensor shapes differ"
        raise ValueError(
            f"cannot load a checkpoint of {_describe(saved)} into a model of "
            f"{_describe(mine)}{detail}"
        )
    model.load_state_dict(checkpoint["model_state"])
    return model


def load_model(
    path: str | Path,
    expected_variant: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was made from, load its weights; return ``(model, ckpt)``.

    The model is in eval mode on ``map_location``. ``expected_variant`` guards against loading,
    say, the ``allconv`` file where ``base`` was meant (``ValueError`` naming both).
    """
    checkpoint = load_checkpoint(path, map_location)
    arch = checkpoint["architecture"]
    if expected_variant is not None and arch.get("name") != expected_variant:
        raise ValueError(
            f"{path} holds a {_describe(arch)} model, but a {expected_variant!r} model was expected"
        )
    if arch.get("name") not in VARIANTS:
        raise CheckpointError(
            f"{path} holds an unknown architecture {arch.get('name')!r}; known: {', '.join(VARIANTS)}"
        )
    model = build_model(arch["name"], **arch.get("kwargs", {}))
    load_weights(model, checkpoint)
    return model.to(map_location).eval(), checkpoint


# --------------------------------------------------------------------------------------------
# RNG state: everything random in a run, as plain data (uint8/int64 tensors, ints, lists)


def rng_state(generators: Sequence[torch.Generator]) -> dict[str, Any]:
    """Python's, NumPy's and torch's global RNG states plus ``generators``' (a run's data
    loader and augmentation streams), as plain data a checkpoint can hold."""
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


def restore_rng_state(state: dict[str, Any], generators: Sequence[torch.Generator]) -> None:
    """Put back what :func:`rng_state` saved; ``generators`` must be the same kind of streams."""
    if len(state["generators"]) != len(generators):
        raise ValueError(
            f"the checkpoint saved {len(state['generators'])} generator states (data loader and "
            f"augmentation) but this run has {len(generators)}; resume with the same kind of "
            f"loader and the same augment setting"
        )
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
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
