"""The model-card generator on small fake checkpoint folders (written with the real
save_checkpoint): every number checked against values computed here from the fake histories,
and params, MACs and receptive fields against hand counts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pooltools.checkpoint import save_checkpoint
from pooltools.config import machine_line
from pooltools.models import build_model
from pooltools.tools import model_card
from pooltools.train import RECIPE, TrainConfig

TINY = {"widths": [4, 8], "convs_per_stage": 1}
# Hand counts for TINY (3x32x32 input, 10 classes):
#   base: conv 3->4 (108 weights) + BN (8), pool, conv 4->8 (288) + BN (16), fc 8*10+10 = 510
#   MACs: 4*32*32 * 3*9 + 8*16*16 * 4*9 + 8*10 = 110,592 + 73,728 + 80 = 184,400
#   receptive field: conv3 -> 3, pool 2/2 -> 4 (jump 2), conv3 -> 4 + 2*2 = 8
#   dilated: same weights, no pool, conv2 dilated 3 at 32x32:
#   MACs 110,592 + 8*32*32 * 36 + 80 = 405,584; field 3 + 2*3 = 9
HAND = {
    "base": {"params": 510, "macs": 184_400, "receptive_field": 8},
    "dilated": {"params": 510, "macs": 405_584, "receptive_field": 9},
}


def _history(epoch_times, accs):
    wall, out = 0.0, []
    for i, (t, acc) in enumerate(zip(epoch_times, accs, strict=True), start=1):
        wall += t
        out.append(
            {
                "epoch": i,
                "train_loss": 1.0 / i,
                "train_acc": acc,
                "test_loss": 1.0 / i,
                "test_acc": acc,
                "lr": 0.1,
                "epoch_time": t,
                "wall_time": wall,
            }
        )
    return out


def _run(
    folder: Path,
    stem: str,
    variant: str,
    seed: int,
    epoch_times,
    accs,
    planned=None,
    **config_changes,
):
    """Write ``stem.pt`` + ``stem.json`` as pooltools.train does; finished when the history
    covers ``planned`` epochs (default: all of it)."""
    planned = planned if planned is not None else len(epoch_times)
    config = TrainConfig(
        model=variant, model_kwargs=TINY, epochs=planned, seed=seed, **config_changes
    ).to_dict()
    history = _history(epoch_times, accs)
    finished = len(history) == planned
    final = None
    if finished:
        final = {"test_acc": accs[-1], "epochs": planned, "train_time": sum(epoch_times)}
    save_checkpoint(
        folder / f"{stem}.pt",
        build_model(variant, **TINY),
        config=config,
        history=history,
        final=final,
        training_state={"epoch": len(history), "planned_epochs": planned, "finished": finished},
    )


BASE0 = ([10.0, 12.0, 11.0, 30.0], [0.5, 0.6, 0.7, 0.80])
BASE1 = ([13.0, 14.0, 15.0, 16.0], [0.5, 0.6, 0.7, 0.82])
BASE2 = ([20.0, 21.0], [0.4, 0.5])  # still training: epoch 2 of 4
DIL0 = ([50.0, 52.0, 51.0, 49.0], [0.4, 0.5, 0.6, 0.70])


@pytest.fixture
def folder(tmp_path):
    _run(tmp_path, "base", "base", 0, *BASE0)
    _run(tmp_path, "base-seed1", "base", 1, *BASE1)
    _run(tmp_path, "base-seed2", "base", 2, *BASE2, planned=4)
    _run(tmp_path, "dilated", "dilated", 0, *DIL0)
    return tmp_path


def _median(values):
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def test_summary_numbers_come_from_the_histories(folder):
    summary = model_card.write_card(folder)
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert list(on_disk["variants"]) == ["base", "dilated"]
    base, dil = on_disk["variants"]["base"], on_disk["variants"]["dilated"]
    assert base["seeds"] == [0, 1] and dil["seeds"] == [0]
    assert base["test_acc"] == [0.80, 0.82] and dil["test_acc"] == [0.70]
    assert base["test_acc_mean"] == pytest.approx(0.81)
    assert base["test_acc_std"] == pytest.approx(math.sqrt(2 * 0.01**2 / 1))
    assert dil["test_acc_std"] is None
    for name, v in (("base", base), ("dilated", dil)):
        assert {k: v[k] for k in HAND[name]} == HAND[name]
    assert base["median_epoch_s"] == _median(BASE0[0] + BASE1[0]) == 13.5
    assert dil["median_epoch_s"] == _median(DIL0[0])
    assert base["train_time_s"] == [sum(BASE0[0]), sum(BASE1[0])]
    assert base["files"] == ["base.pt", "base-seed1.pt"]
    assert base["file_bytes"] == [(folder / f).stat().st_size for f in base["files"]]
    # the partial run is listed apart and counted nowhere
    assert [
        (p["variant"], p["seed"], p["epoch"], p["planned_epochs"]) for p in on_disk["in_progress"]
    ] == [("base", 2, 2, 4)]
    assert on_disk["finished_runs"] == 3
    assert on_disk["total_train_time_s"] == sum(BASE0[0]) + sum(BASE1[0]) + sum(DIL0[0])
    assert on_disk["in_progress_train_time_s"] == sum(BASE2[0])
    assert on_disk["max_epoch_over_median"] == pytest.approx(30.0 / 11.5 - 1)
    env = json.loads((folder / "base.json").read_text())["environment"]
    (machine,) = on_disk["machines"]
    assert machine["cpu_count"] == env["cpu_count"] and machine["torch"] == env["torch"]
    assert machine["runs"] == ["base", "base-seed1", "base-seed2", "dilated"]


def test_card_shows_the_same_numbers(folder):
    model_card.write_card(folder)
    card = (folder / "README.md").read_text()
    env = json.loads((folder / "base.json").read_text())["environment"]
    assert "| `base` | **81.00 ± 1.41 % (n = 2)** | 0: 80.00, 1: 82.00 | 510 |" in card
    assert "| `dilated` | **70.00 % (n = 1)** | 0: 70.00 | 510 |" in card
    assert "0.2 M | 8 px | 14 s |" in card  # 184,400 MACs, 8 px, median 13.5 s
    assert "0.4 M | 9 px | 50 s |" in card
    assert "`base` seed 2 (`base-seed2.pt`): epoch 2 of 4" in card
    total = sum(BASE0[0]) + sum(BASE1[0]) + sum(DIL0[0])  # 323 s
    assert f"Total training time of the 3 finished runs: {total / 60:.1f} min" in card
    assert f"(and {sum(BASE2[0]):.0f} s so far in the runs still training)" in card
    assert f"{env['cpu_count']} cores" in card and f"torch {env['torch'].split('+')[0]}" in card
    assert "tuning sweep of 5 full runs of `base` alone" in card
    assert "What that could bias" in card
    assert "seeds 0, 1." in card
    assert "up to 161 % longer" in card  # 30 s against the run's median of 11.5 s
    # the scale sentence: binomial interval of the base mean, 81 % on 10,000 images
    assert "±0.8 points" in card


def test_regeneration_is_byte_identical_and_leaves_no_temp_files(folder):
    model_card.write_card(folder)
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    model_card.write_card(folder)  # summary.json now exists and must be ignored as input
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_finished_folder_and_two_machines(tmp_path):
    _run(tmp_path, "base", "base", 0, *BASE0)
    _run(tmp_path, "base-seed1", "base", 1, *BASE1)
    path = tmp_path / "base-seed1.json"
    record = json.loads(path.read_text())
    record["environment"]["device"] = "cuda"
    path.write_text(json.dumps(record))
    summary = model_card.write_card(tmp_path)
    assert summary["in_progress"] == [] and len(summary["machines"]) == 2
    card = (tmp_path / "README.md").read_text()
    assert "None: every run in this folder has finished." in card
    assert "Machines:\n" in card and "`base-seed1`" in card
    env = {k: record['environment'].get(k) for k in model_card.ENV_FIELDS}
    assert f"- {machine_line(env)}, Python" in card  # the one machine text
    assert ", cuda, Python" in card
    assert "deterministic on the CPU" not in card


def test_quick_runs_are_skipped(tmp_path):
    _run(tmp_path, "base", "base", 0, *BASE0)
    _run(tmp_path, "base-quick", "base", 0, [1.0], [0.3], subset=100)
    assert [r.stem for r in model_card.read_runs(tmp_path)] == ["base"]


def test_a_misnamed_file_is_refused(tmp_path):
    _run(tmp_path, "base-seed3", "base", 1, *BASE1)
    with pytest.raises(ValueError, match=r"seed 1, which pooltools.train names 'base-seed1'"):
        model_card.read_runs(tmp_path)


def test_runs_of_different_recipes_are_refused(tmp_path):
    _run(tmp_path, "base", "base", 0, *BASE0)
    _run(tmp_path, "base-seed1", "base", 1, *BASE1, lr=0.2)
    with pytest.raises(ValueError, match=rf"different recipes \(lr: {RECIPE.lr} vs 0.2\)"):
        model_card.write_card(tmp_path)
    assert not (tmp_path / "summary.json").exists()


def test_other_files_are_skipped_and_foreign_content_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no training runs"):
        model_card.write_card(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        model_card.read_runs(tmp_path / "nope")
    _run(tmp_path, "dilated", "dilated", 0, *DIL0)
    (tmp_path / "predictions.json").write_text('{"hello": 1}')  # another tool's file
    assert [r.stem for r in model_card.read_runs(tmp_path)] == ["dilated"]
    (tmp_path / "base.json").write_text('{"hello": 1}')  # a checkpoint's name, not its content
    with pytest.raises(ValueError, match="base.json is not a training history"):
        model_card.read_runs(tmp_path)


def test_cli(folder, capsys):
    assert model_card.main(["--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 variants, 3 finished runs, 1 in progress" in out
    assert str(folder.parent) not in out  # no absolute path of the machine
