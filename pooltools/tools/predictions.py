"""``make predictions``: record every finished checkpoint's test-set predictions.

Records whose checkpoint is unchanged (same SHA-256) are kept, so adding one seed evaluates only
that one. Unfinished (still training) checkpoints are skipped and named.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from pooltools.checkpoint import load_checkpoint, parse_checkpoint_name
from pooltools.config import data_dir
from pooltools.predictions import (
    FILE_NAME,
    StalePredictionsError,
    load_predictions,
    normalized_test_images,
    record_checkpoint,
    save_predictions,
    sha256_of,
)


def finished_checkpoints(folder: Path) -> tuple[list[Path], list[str]]:
    """``(finished checkpoint paths, stems still training)`` among the real runs in ``folder``."""
    finished, training = [], []
    for path in sorted(folder.glob("*.pt")):
        try:
            parse_checkpoint_name(path.stem)
        except ValueError:
            continue  # -quick runs and foreign files
        state = load_checkpoint(path)["training_state"] or {}
        (finished if state.get("finished") else training).append(
            path if state.get("finished") else path.stem
        )
    return finished, training


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pooltools.tools.predictions", description=__doc__)
    p.add_argument("--checkpoints", type=Path, default=None, help="default: data/checkpoints")
    args = p.parse_args(argv)
    folder = args.checkpoints or data_dir() / "checkpoints"
    out = folder / FILE_NAME
    old = {}
    if out.is_file():
        try:
            old, _ = load_predictions(out)
        except (StalePredictionsError, KeyError, ValueError):
            old = {}
    paths, training = finished_checkpoints(folder)
    images, labels = normalized_test_images()
    records = []
    for path in paths:
        kept = old.get(path.stem)
        if kept is not None and kept.checkpoint_sha256 == sha256_of(path):
            records.append(kept)
            continue
        start = time.perf_counter()
        records.append(record_checkpoint(path, images))
        acc = records[-1].correct(labels).mean()
        print(f"{path.stem}: test acc {acc:.2%} ({time.perf_counter() - start:.0f} s)", flush=True)
        # saved after each one (the unchanged ones are kept), so an interrupted run loses little
        save_predictions(
            [*records, *(r for s, r in old.items() if s not in {p.stem for p in paths})],
            labels,
            out,
        )
    save_predictions(records, labels, out)
    print(
        f"{len(records)} checkpoints recorded in {out.name}"
        + (f"; still training, skipped: {', '.join(training)}" if training else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
