"""Tests of pooltools.data: sources, cache, subsets, stats and loaders, on tiny fake datasets."""

from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pooltools import config, data
from pooltools.data import CIFAR10_CLASSES, ENV_VAR, CIFAR10NotFoundError

SHARED = Path(os.environ.get(ENV_VAR) or "/work/shared/datasets/cifar10-jpeg")
PER_CLASS = {"train": 3, "test": 2}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no env var and an empty in-process memo."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    data._MEMO.clear()


def write_image_folder(
    folder: Path, suffix: str = ".png", per_class: dict[str, int] = PER_CLASS, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a tiny ImageFolder of seeded random images; return what was written per split."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in per_class.items():
        images = rng.integers(0, 256, size=(10 * count, 32, 32, 3), dtype=np.uint8)
        labels = np.repeat(np.arange(10, dtype=np.int64), count)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            class_dir = folder / split / CIFAR10_CLASSES[label]
            class_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(class_dir / f"{i:04d}{suffix}")
        written[split] = (images, labels)
    return written


@pytest.fixture
def tiny(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A tiny PNG ImageFolder named by the env var; caches go to tmp_path/root."""
    written = write_image_folder(tmp_path / "cifar")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cifar"))
    return written


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although a sound cache or memo exists")

    monkeypatch.setattr(data, "_decode_image", fail)


def count_decoding(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    decoded: list[Path] = []
    real = data._decode_image

    def spy(path: Path) -> np.ndarray:
        decoded.append(path)
        return real(path)

    monkeypatch.setattr(data, "_decode_image", spy)
    return decoded


# ------------------------------------------------------------------------ ImageFolder source


@pytest.mark.parametrize("split", ["train", "test"])
def test_image_folder_png_loads_exactly(tiny, tmp_path, split):
    images, labels = data.load_cifar10(split, root=tmp_path / "root")
    assert images.dtype == np.uint8 and images.shape == (10 * PER_CLASS[split], 32, 32, 3)
    assert labels.dtype == np.int64 and labels.shape == (10 * PER_CLASS[split],)
    np.testing.assert_array_equal(images, tiny[split][0])  # PNG is lossless
    np.testing.assert_array_equal(labels, tiny[split][1])
    assert not images.flags.writeable and not labels.flags.writeable


def test_image_folder_jpeg_equals_pil_decoding(tmp_path, monkeypatch):
    written = write_image_folder(tmp_path / "jpg", suffix=".jpg", per_class={"test": 1})
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "jpg"))
    images, labels = data.load_cifar10("test", root=tmp_path / "root")
    for image, label in zip(images, labels, strict=True):
        path = tmp_path / "jpg" / "test" / CIFAR10_CLASSES[label] / f"{label:04d}.jpg"
        np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")))
    assert not np.array_equal(images, written["test"][0])  # JPEG is lossy: a real decode


def test_image_folder_grayscale_is_converted_to_rgb(tiny, tmp_path):
    path = tmp_path / "cifar" / "test" / "cat" / "0006.png"
    gray = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    Image.fromarray(gray, mode="L").save(path)
    images, labels = data.load_cifar10("test", root=tmp_path / "root")
    np.testing.assert_array_equal(images[6], np.stack([gray] * 3, axis=-1))
    assert labels[6] == CIFAR10_CLASSES.index("cat")


def test_image_folder_ignores_hidden_and_other_files(tiny, tmp_path):
    (tmp_path / "cifar" / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "cifar" / "train" / "README.md").write_text("not a class")
    (tmp_path / "cifar" / "train" / "cat" / "notes.txt").write_text("not an image")
    images, _ = data.load_cifar10("train", root=tmp_path / "root")
    np.testing.assert_array_equal(images, tiny["train"][0])


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda d: os.rename(d / "train" / "cat", d / "train" / "kitty"), r"missing \['cat'\]"),
        (lambda d: (d / "train" / "horse2").mkdir(), r"unexpected \['horse2'\]"),
        (lambda d: [p.unlink() for p in (d / "train" / "dog").iterdir()], "dog/ has no"),
        (lambda d: os.rename(d / "train", d / "training"), "has no train/ folder"),
    ],
)
def test_image_folder_with_wrong_layout_is_refused(tiny, tmp_path, break_it, expected):
    break_it(tmp_path / "cifar")
    with pytest.raises(CIFAR10NotFoundError, match=expected):
        data.load_cifar10("train", root=tmp_path / "root")


def test_env_var_pointing_nowhere_is_refused_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(CIFAR10NotFoundError, match="does not exist"):
        data.load_cifar10("test", root=tmp_path / "root")


def test_undecodable_file_names_the_file(tiny, tmp_path):
    bad = tmp_path / "cifar" / "test" / "ship" / "0016.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="0016.png"):
        data.load_cifar10("test", root=tmp_path / "root")


def test_wrong_image_size_is_refused(tiny, tmp_path):
    Image.new("RGB", (33, 32)).save(tmp_path / "cifar" / "test" / "ship" / "0016.png")
    with pytest.raises(ValueError, match="expected a 32x32 image, but it is 33x32"):
        data.load_cifar10("test", root=tmp_path / "root")


@pytest.mark.parametrize("split", ["val", "Train", "", "all"])
def test_bad_split_names_the_allowed_values(split):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        data.load_cifar10(split)


# ----------------------------------------------------------------------------- caching


def cache_files(root: Path, split: str) -> list[Path]:
    return sorted(root.glob(f"cifar10-{split}-folder-*.npz"))


def test_cache_is_written_then_reused_without_decoding(tiny, tmp_path, monkeypatch):
    root = tmp_path / "root"
    decoded = count_decoding(monkeypatch)
    first = data.load_cifar10("train", root=root)
    assert len(decoded) == 30 and len(cache_files(root, "train")) == 1
    assert not list(root.glob("*.tmp"))  # the atomic write left no temp file
    data._MEMO.clear()
    forbid_decoding(monkeypatch)
    second = data.load_cifar10("train", root=root)
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], first[1])


def test_memo_returns_the_same_arrays_without_reading_the_cache(tiny, tmp_path, monkeypatch):
    first = data.load_cifar10("test", root=tmp_path / "root")
    forbid_decoding(monkeypatch)
    monkeypatch.setattr(data, "_read_cache", lambda *a: pytest.fail("reread the cache"))
    second = data.load_cifar10("test", root=tmp_path / "root")
    assert second[0] is first[0] and second[1] is first[1]


def test_splits_and_sources_get_their_own_cache_files(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write_image_folder(tmp_path / "a", seed=1)
    write_image_folder(tmp_path / "b", seed=2)
    loaded = {}
    for name in "ab":
        monkeypatch.setenv(ENV_VAR, str(tmp_path / name))
        loaded[name] = data.load_cifar10("test", root=root)[0]
        data.load_cifar10("train", root=root)
    assert len(cache_files(root, "test")) == 2 and len(cache_files(root, "train")) == 2
    assert not np.array_equal(loaded["a"], loaded["b"])
    data._MEMO.clear()
    monkeypatch.setattr(data, "_decode_image", lambda p: pytest.fail(f"decoded {p}"))
    for name in "ab":
        monkeypatch.setenv(ENV_VAR, str(tmp_path / name))
        np.testing.assert_array_equal(data.load_cifar10("test", root=root)[0], loaded[name])


def test_adding_a_file_to_the_folder_gives_a_new_cache(tiny, tmp_path):
    root = tmp_path / "root"
    assert len(data.load_cifar10("test", root=root)[1]) == 20
    Image.fromarray(tiny["test"][0][0]).save(tmp_path / "cifar" / "test" / "frog" / "9999.png")
    images, labels = data.load_cifar10("test", root=root)  # the memo key changes too
    assert len(labels) == 21 and np.bincount(labels)[CIFAR10_CLASSES.index("frog")] == 3
    assert len(cache_files(root, "test")) == 2


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _corrupt(kind: str, path: Path) -> None:
    """Break a sound cache file in one of the ways a disk, a crash or a bug could."""
    raw = path.read_bytes()
    with np.load(path) as npz:
        images, labels, counts = npz["images"], npz["labels"], npz["class_counts"]
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(len(raw)))
    elif kind == "flipped byte":  # the zip's CRC check catches it
        pos = raw.index(images.tobytes()[:64]) + 100
        path.write_bytes(raw[:pos] + bytes([raw[pos] ^ 0xFF]) + raw[pos + 1 :])
    elif kind == "wrong shape":
        _rewrite(path, images=images[:, :16])
    elif kind == "wrong dtype":
        _rewrite(path, images=images.astype(np.float32))
    elif kind == "wrong label dtype":
        _rewrite(path, labels=labels.astype(np.int32))
    elif kind == "label out of range":
        _rewrite(path, labels=np.where(labels == 9, 10, labels))
    elif kind == "missing class":
        _rewrite(path, labels=np.where(labels == 9, 0, labels))
    elif kind == "counts disagree":
        _rewrite(path, class_counts=counts + 1)
    elif kind == "fewer images":
        _rewrite(path, images=images[:-1], labels=labels[:-1])
    elif kind == "missing key":
        _rewrite(path, labels=None)
    elif kind == "other source":
        _rewrite(path, source=np.array("/somewhere/else"))
    elif kind == "odd version":
        _rewrite(path, version=np.array([1, 1]))
    elif kind == "pickled object":
        _rewrite(path, images=np.array([{"evil": 1}], dtype=object))
    else:
        raise ValueError(kind)


CORRUPTIONS = [
    "truncated", "empty", "garbage", "flipped byte", "wrong shape", "wrong dtype",
    "wrong label dtype", "label out of range", "missing class", "counts disagree",
    "fewer images", "missing key", "other source", "odd version", "pickled object",
]  # fmt: skip


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_broken_cache_is_detected_deleted_and_rebuilt(tiny, tmp_path, monkeypatch, kind):
    root = tmp_path / "root"
    data.load_cifar10("test", root=root)
    [path] = cache_files(root, "test")
    _corrupt(kind, path)
    data._MEMO.clear()
    decoded = count_decoding(monkeypatch)
    with pytest.warns(RuntimeWarning, match="broken CIFAR-10 cache"):
        images, labels = data.load_cifar10("test", root=root)
    assert len(decoded) == 20  # rebuilt from the images, not taken from the broken file
    np.testing.assert_array_equal(images, tiny["test"][0])
    np.testing.assert_array_equal(labels, tiny["test"][1])
    # ... and the rewritten cache is sound: it loads without a warning or a decode.
    data._MEMO.clear()
    forbid_decoding(monkeypatch)
    np.testing.assert_array_equal(data.load_cifar10("test", root=root)[0], tiny["test"][0])


def test_cache_write_is_atomic_when_interrupted(tiny, tmp_path, monkeypatch):
    root = tmp_path / "root"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        data.load_cifar10("test", root=root)
    assert list(root.iterdir()) == []  # neither a half-written cache nor a temp file


# ----------------------------------------------------------------- torchvision sources


def write_torchvision_folder(root: Path, train_per_batch: int = 10, test: int = 20) -> dict:
    """Fake ``cifar-10-batches-py`` in torchvision's pickle format; return the arrays written."""
    rng = np.random.default_rng(3)
    folder = root / data.TV_FOLDER
    folder.mkdir(parents=True)
    written = {"train": ([], []), "test": ([], [])}
    batches = [(f"data_batch_{i}", "train", train_per_batch) for i in range(1, 6)]
    for name, split, n in [*batches, ("test_batch", "test", test)]:
        rows = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)  # CHW rows
        labels = list(range(10)) * (n // 10)
        rng.shuffle(labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": rows, "labels": labels}, f)
        written[split][0].append(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        written[split][1].extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, f)
    return {s: (np.concatenate(im), np.array(lab)) for s, (im, lab) in written.items()}


def skip_md5_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision checks the md5 of each file (and of batches.meta); our fakes cannot match."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)


def fail_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from torchvision.datasets import CIFAR10

    attempts: list[str] = []

    def offline(self) -> None:
        attempts.append(self.root)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    return attempts


@pytest.mark.parametrize("split", ["train", "test"])
def test_torchvision_folder_loads(tmp_path, monkeypatch, split):
    written = write_torchvision_folder(tmp_path)
    skip_md5_checks(monkeypatch)
    attempts = fail_download(monkeypatch)
    images, labels = data.load_cifar10(split, root=tmp_path)
    assert images.dtype == np.uint8 and images.shape == written[split][0].shape
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, written[split][0])
    np.testing.assert_array_equal(labels, written[split][1])
    assert attempts == [] and not cache_files(tmp_path, split)
    assert data.load_cifar10(split, root=tmp_path)[0] is images  # memoized


def test_env_folder_wins_over_torchvision_folder(tiny, tmp_path, monkeypatch):
    write_torchvision_folder(tmp_path / "root")
    images, _ = data.load_cifar10("test", root=tmp_path / "root")
    np.testing.assert_array_equal(images, tiny["test"][0])


MESSAGE_PARTS = [ENV_VAR, "ImageFolder", data.TV_FOLDER, "be online", "download", "Looked at"]


def test_no_source_raises_one_error_naming_the_three_ways(tmp_path, monkeypatch):
    root = tmp_path / "empty"
    attempts = fail_download(monkeypatch)
    with pytest.raises(CIFAR10NotFoundError) as info:
        data.load_cifar10("train", root=root)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert all(part in message for part in MESSAGE_PARTS), message
    assert f"{ENV_VAR}: not set" in message and "does not exist" in message
    assert "URLError" in message and str(root.resolve()) in message
    assert len(attempts) == 1  # the download was tried, once


def test_corrupt_torchvision_folder_is_reported(tmp_path, monkeypatch):
    write_torchvision_folder(tmp_path)  # md5 sums not patched: torchvision rejects it
    fail_download(monkeypatch)
    with pytest.raises(CIFAR10NotFoundError, match="unusable") as info:
        data.load_cifar10("test", root=tmp_path)
    assert all(part in str(info.value) for part in MESSAGE_PARTS)


# ---------------------------------------------------------------------- describe_source


def test_describe_source_reads_no_images(tiny, tmp_path, monkeypatch):
    forbid_decoding(monkeypatch)
    # no absolute path of the machine: the variable's name and the folder's own name
    assert data.describe_source() == f"ImageFolder at ${ENV_VAR} (cifar)"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert data.describe_source().endswith("(nowhere, MISSING)")
    monkeypatch.delenv(ENV_VAR)
    root = tmp_path / "root"
    assert data.describe_source(root) == (
        f"torchvision download into {config.display_path(root)}/ (not downloaded yet)"
    )
    write_torchvision_folder(root)
    assert data.describe_source(root) == (
        f"torchvision files in {config.display_path(root / data.TV_FOLDER)}"
    )


# --------------------------------------------------------------------- subset and stats


def numbered(per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel holds their index, so a subset's pairs can be checked."""
    n = 10 * per_class
    images = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    labels = np.arange(n, dtype=np.int64) % 10
    return images, labels


def index_of(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 0, 1].astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_subset_is_stratified_seeded_and_paired(n, seed):
    images, labels = numbered()
    sub_images, sub_labels = data.subset(images, labels, n, seed=seed)
    expected = [n // 10 + (c < n % 10) for c in range(10)]
    assert np.bincount(sub_labels, minlength=10).tolist() == expected
    picked = index_of(sub_images)
    assert len(set(picked.tolist())) == n  # no image twice
    np.testing.assert_array_equal(labels[picked], sub_labels)  # each image keeps its label
    again = data.subset(images, labels, n, seed=seed)
    np.testing.assert_array_equal(again[0], sub_images)


def test_subset_order_is_shuffled_and_depends_on_the_seed():
    images, labels = numbered()
    a = index_of(data.subset(images, labels, 50, seed=0)[0])
    b = index_of(data.subset(images, labels, 50, seed=1)[0])
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, np.sort(a))
    assert not np.array_equal(data.subset(images, labels, 50)[1], np.sort(labels[a]))


@pytest.mark.parametrize(
    "n, expected", [(0, "positive int"), (-3, "positive int"), (2.5, "positive int"),
                    (201, "needs 21 images of class 0"), (10**6, "only 20 are available")],
)  # fmt: skip
def test_subset_refuses_impossible_sizes(n, expected):
    with pytest.raises(ValueError, match=expected):
        data.subset(*numbered(), n)


def test_channel_stats_hand_checkable():
    images = np.zeros((2, 1, 1, 3), dtype=np.uint8)
    images[1] = (255, 51, 0)  # channel 0: {0, 1}, channel 1: {0, 0.2}, channel 2: {0, 0}
    mean, std = data.channel_stats(images)
    assert mean == pytest.approx((0.5, 0.1, 0.0), abs=1e-15)
    assert std == pytest.approx((0.5, 0.1, 0.0), abs=1e-15)


def test_channel_stats_equals_numpy():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(50, 32, 32, 3), dtype=np.uint8)
    images[:, :, :, 2] //= 3  # channels with different statistics
    mean, std = data.channel_stats(images)
    pixels = images.reshape(-1, 3).astype(np.float64) / 255
    assert isinstance(mean, tuple) and all(type(v) is float for v in mean + std)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((2, 32, 32, 3)), np.zeros((2, 3, 32, 32), np.uint8),
                                 np.zeros((0, 32, 32, 3), np.uint8)])  # fmt: skip
def test_channel_stats_refuses_other_arrays(bad):
    with pytest.raises(ValueError, match=r"uint8 array \(N, H, W, 3\)"):
        data.channel_stats(bad)


# ----------------------------------------------------------------------- tensors, loaders


def random_dataset(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    images[..., 1] //= 2
    return images, np.arange(n, dtype=np.int64) % 10


def test_to_tensor_batch_matches_torch_reference():
    images, _ = random_dataset(8)
    stats = ((0.4, 0.3, 0.2), (0.25, 0.2, 0.3))
    batch = data.to_tensor_batch(images, stats)
    mean = torch.tensor(stats[0]).view(1, 3, 1, 1)
    std = torch.tensor(stats[1]).view(1, 3, 1, 1)
    reference = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert batch.dtype == torch.float32 and batch.shape == (8, 3, 32, 32)
    assert batch.is_contiguous()
    torch.testing.assert_close(batch, reference, rtol=0, atol=1e-5)


def test_to_tensor_batch_refuses_bad_stats_and_images():
    images, _ = random_dataset(2)
    with pytest.raises(ValueError, match="std must be positive"):
        data.to_tensor_batch(images, ((0.5,) * 3, (0.2, 0.0, 0.2)))
    with pytest.raises(ValueError, match="3 values each"):
        data.to_tensor_batch(images, ((0.5, 0.5), (0.2, 0.2)))
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        data.to_tensor_batch(images.astype(np.float32), ((0.5,) * 3, (0.2,) * 3))


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_loader_normalizes_to_zero_mean_unit_std():
    images, labels = random_dataset()
    x, y = collect(data.make_loader(images, labels, batch_size=16))
    assert x.dtype == torch.float32 and x.shape == (60, 3, 32, 32) and y.dtype == torch.int64
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(x.std(dim=(0, 2, 3), correction=0), torch.ones(3), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), labels)  # train=False keeps the order


def test_loader_uses_given_stats():
    images, labels = random_dataset()
    stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    x, _ = collect(data.make_loader(images, labels, stats=stats))
    torch.testing.assert_close(x, data.to_tensor_batch(images, stats))


def test_train_loader_drops_the_last_partial_batch_by_default():
    images, labels = random_dataset()
    assert len(data.make_loader(images, labels, batch_size=16, train=True)) == 3
    assert len(data.make_loader(images, labels, batch_size=16, train=False)) == 4
    assert len(data.make_loader(images, labels, batch_size=16, train=True, drop_last=False)) == 4


def order(loader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_shuffle_is_seeded_and_ignores_the_global_rng():
    images, labels = random_dataset()
    labels = np.arange(60, dtype=np.int64)  # labels as indices reveal the order
    a = data.make_loader(images, labels, batch_size=16, train=True, drop_last=False, seed=1)
    b = data.make_loader(images, labels, batch_size=16, train=True, drop_last=False, seed=1)
    c = data.make_loader(images, labels, batch_size=16, train=True, drop_last=False, seed=2)
    torch.manual_seed(123)
    first = order(a)
    torch.manual_seed(456)
    assert order(b) == first and sorted(first) == list(range(60))
    assert first != list(range(60)) and order(c) != first
    assert order(a) != first  # the next epoch has a new order


def test_augmentation_keeps_shapes_and_makes_padded_crops_and_flips():
    images, _ = random_dataset(40)
    stats = data.channel_stats(images)
    plain = data.to_tensor_batch(images, stats)
    x, y = data.random_crop_flip(plain, torch.Generator().manual_seed(0)), torch.arange(40)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32
    padded = F.pad(plain, (4, 4, 4, 4))  # zero padding of the normalized image
    moves = set()
    for image, i in zip(x, y.tolist(), strict=True):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(
                image.flip(-1) if flip else image, padded[i, :, dy : dy + 32, dx : dx + 32]
            )
        ]
        assert matches, f"augmented image {i} is no crop (or flipped crop) of the padded original"
        moves.update(matches)
    assert len(moves) > 10 and any(flip for *_, flip in moves)  # varied, not a fixed shift
    assert not torch.equal(x, plain)


def test_random_crop_flip_equals_torchvision_crop_and_flip_per_image():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    images = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = data.random_crop_flip(images, torch.Generator().manual_seed(1), padding=4)
    # replay the same draws, one image at a time, with torchvision's functional ops
    g = torch.Generator().manual_seed(1)
    top, left = torch.randint(0, 9, (64,), generator=g), torch.randint(0, 9, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    for i in range(64):
        expected = tvf.crop(tvf.pad(images[i], [4]), int(top[i]), int(left[i]), 32, 32)
        expected = tvf.horizontal_flip(expected) if flip[i] else expected
        assert torch.equal(out[i], expected), i
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert 0 < int(flip.sum()) < 64 and len(set(top.tolist())) > 4  # both ways, many offsets


def test_random_crop_flip_is_seeded_and_hand_checkable():
    images = torch.randn(8, 3, 32, 32)
    runs = [data.random_crop_flip(images, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    x = torch.arange(4.0).view(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    crops = {tuple(data.random_crop_flip(x, torch.Generator().manual_seed(s), 1).flatten().tolist())
             for s in range(200)}  # fmt: skip
    assert (0.0, 1.0, 2.0, 3.0) in crops and (1.0, 0.0, 3.0, 2.0) in crops  # centre, mirrored
    assert (0.0, 0.0, 0.0, 0.0) in crops and (3.0, 0.0, 0.0, 0.0) in crops  # zero-padded corners
    with pytest.raises(ValueError, match=r"must be a \(N, C, H, W\) batch"):
        data.random_crop_flip(torch.randn(3, 32, 32), torch.Generator())
    with pytest.raises(ValueError, match="padding must be a non-negative int"):
        data.random_crop_flip(x, torch.Generator(), padding=-1)


def test_batches_do_not_depend_on_the_number_of_workers():
    images, labels = random_dataset(32)
    kwargs = dict(batch_size=8, train=True, seed=3)
    serial = collect(data.make_loader(images, labels, num_workers=0, **kwargs))
    parallel = collect(data.make_loader(images, labels, num_workers=2, **kwargs))
    assert torch.equal(serial[0], parallel[0]) and torch.equal(serial[1], parallel[1])


def test_dataset_returns_the_normalized_image_and_its_label():
    images, labels = random_dataset(4)
    dataset = data.CIFAR10Tensors(images, labels)
    image, label = dataset[2]
    assert label.item() == labels[2] and image.shape == (3, 32, 32)
    mean, std = dataset.stats
    expected = (torch.from_numpy(images[2]).permute(2, 0, 1).double() / 255
                - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)  # fmt: skip
    torch.testing.assert_close(image.double(), expected, atol=1e-5, rtol=1e-5)
    assert len(dataset) == 4 and dataset.images.dtype == torch.float32


def test_dataset_refuses_mismatched_lengths():
    images, labels = random_dataset(4)
    with pytest.raises(ValueError, match="differ in length: 4 vs 3"):
        data.CIFAR10Tensors(images, labels[:3])


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (SHARED / "test").is_dir(), reason=f"no CIFAR-10 folder at {SHARED}")
def test_real_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(SHARED))
    images, labels = data.load_cifar10("test", root=tmp_path)
    assert images.shape == (10_000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10
    mean, std = data.channel_stats(images)
    assert all(0.4 < m < 0.55 for m in mean) and all(0.2 < s < 0.3 for s in std)
