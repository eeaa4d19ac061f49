"""CIFAR-10 as numpy arrays and seeded, normalized PyTorch loaders.

One job: get CIFAR-10 into memory reliably and the same way every time. ``load_cifar10`` looks
for the data in three places, in this order:

1. an ImageFolder copy named by the environment variable ``POOLTOOLS_CIFAR10_DIR``
   (``train/<class>/*.jpg|*.png``, ``test/<class>/...``), decoded once with PIL and cached;
2. torchvision's python format under ``root/cifar-10-batches-py``;
3. torchvision's download into ``root``.

If none works it raises one ``CIFAR10NotFoundError`` that says what it looked at and the three
ways to provide the data. Images come back as read-only uint8 arrays ``(N, 32, 32, 3)`` (HWC,
RGB), labels as int64 ``(N,)`` indexing ``CIFAR10_CLASSES``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from pooltools.atomic import atomic_write
from pooltools.config import data_dir

__all__ = [
    "CIFAR10_CLASSES",
    "ENV_VAR",
    "CIFAR10NotFoundError",
    "load_cifar10",
    "describe_source",
    "subset",
    "channel_stats",
    "to_tensor_batch",
    "random_crop_flip",
    "CIFAR10Tensors",
    "make_loader",
]

log = logging.getLogger(__name__)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
ENV_VAR = "POOLTOOLS_CIFAR10_DIR"
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TV_FOLDER = "cifar-10-batches-py"
_CACHE_VERSION = 1
# np.load raises these on a truncated, garbled or non-npz file (BadZipFile is no OSError);
# TypeError comes from odd-shaped metadata arrays.
_BROKEN_FILE_ERRORS = (
    OSError,
    TypeError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)

_MEMO: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}


class CIFAR10NotFoundError(FileNotFoundError):
    """No usable CIFAR-10 source; the message lists what was looked at and how to provide it.

    ``looked_at``: those places, one line each, each saying what was wrong there.
    """

    def __init__(self, message: str, looked_at: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.looked_at = list(looked_at)


# --------------------------------------------------------------------------- loading


def load_cifar10(
    split: str, root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of one split: uint8 ``(N, 32, 32, 3)`` and int64 ``(N,)``.

    ``split`` is ``"train"`` (50,000 images) or ``"test"`` (10,000). ``root`` holds the decoded
    cache and torchvision's files; None means ``pooltools.config.data_dir()`` (the checkout's
    ``data/``, so notebooks and tests share one cache).
    The arrays are read-only because repeated calls in one process return the same memoized
    arrays; copy them (``images.copy()``) to modify.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, but got {split!r}")
    root = _root(root)
    folder = _env_folder()
    if folder is not None:
        files = list_image_folder(folder, split, root)
        key = ("folder", split, _folder_key(folder, split, files))
        if key not in _MEMO:
            _MEMO[key] = _freeze(*_load_folder_cached(folder, split, files, root, key[2]))
        return _MEMO[key]
    key = ("torchvision", split, str(root.resolve()))
    if key not in _MEMO:
        _MEMO[key] = _freeze(*_load_torchvision(split, root))
    return _MEMO[key]


def _root(root: str | Path | None) -> Path:
    """``root``, or the project's data directory (``pooltools.config.data_dir``) when None."""
    return data_dir() if root is None else Path(root)


def describe_source(root: str | Path | None = None) -> str:
    """One line saying which source ``load_cifar10(split, root)`` would use; reads no images.

    It names no absolute path (notebooks print it): the ImageFolder by its variable and folder
    name, torchvision's files relative to the project (see :func:`config.display_path`).
    """
    from pooltools.config import display_path

    folder = os.environ.get(ENV_VAR, "").strip()
    if folder:
        path = Path(folder).expanduser().resolve()
        state = "" if path.is_dir() else ", MISSING"
        return f"ImageFolder at ${ENV_VAR} ({path.name}{state})"
    root = _root(root)
    tv = root / TV_FOLDER
    if tv.is_dir():
        return f"torchvision files in {display_path(tv)}"
    return f"torchvision download into {display_path(root)}/ (not downloaded yet)"


def _freeze(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make the memoized arrays read-only so one caller cannot change another's data."""
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _env_folder() -> Path | None:
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser().resolve() if value else None


def _not_found(looked_at: Sequence[str], root: Path) -> CIFAR10NotFoundError:
    root_abs = root.resolve()
    return CIFAR10NotFoundError(
        "CIFAR-10 is not available. Looked at:\n"
        + "".join(f"  - {line}\n" for line in looked_at)
        + "Provide it in one of three ways:\n"
        f"  1. set {ENV_VAR} to an ImageFolder copy (train/<class>/*.jpg|*.png and "
        f"test/<class>/..., the 10 class folders {', '.join(CIFAR10_CLASSES)});\n"
        f"  2. put torchvision's {TV_FOLDER} folder under {root_abs};\n"
        f"  3. be online so torchvision can download it (about 170 MB) into {root_abs}.",
        looked_at,
    )


# ---------------------------------------------------------------- source 1: ImageFolder


def list_image_folder(folder: Path, split: str, root: Path) -> list[list[str]]:
    """Sorted image file names of each class, in ``CIFAR10_CLASSES`` order; checks the layout.

    Plain ``os.listdir`` strings: listing 50,000 names this way takes ~30 ms, Paths ~10x more.
    """
    where = f"{ENV_VAR}={folder}"
    split_dir = folder / split
    if not split_dir.is_dir():
        problem = "does not exist" if not folder.exists() else f"has no {split}/ folder"
        raise _not_found([f"{where}: {problem}"], root)
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if found != sorted(CIFAR10_CLASSES):
        missing = sorted(set(CIFAR10_CLASSES) - set(found))
        extra = sorted(set(found) - set(CIFAR10_CLASSES))
        raise _not_found(
            [
                f"{where}: {split}/ must hold exactly the 10 class folders; "
                f"missing {missing}, unexpected {extra}"
            ],
            root,
        )
    files = []
    for name in CIFAR10_CLASSES:
        images = sorted(
            f for f in os.listdir(split_dir / name)
            if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")
        )  # fmt: skip
        if not images:
            raise _not_found([f"{where}: {split}/{name}/ has no .jpg/.jpeg/.png files"], root)
        files.append(images)
    return files


def _folder_key(folder: Path, split: str, files: list[list[str]]) -> str:
    """Hash of the folder path and its file names: a different source gets a different cache."""
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{folder}|{split}".encode())
    for class_files in files:
        digest.update(f"|{len(class_files)}:".encode())
        digest.update("/".join(class_files).encode())
    return digest.hexdigest()[:16]


def _decode_image(path: Path) -> np.ndarray:
    """Decode one file to uint8 RGB ``(32, 32, 3)`` with PIL."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if pixels.shape != (32, 32, 3):
        raise ValueError(
            f"{path}: expected a 32x32 image, but it is {pixels.shape[1]}x{pixels.shape[0]}"
        )
    return pixels


def _decode_folder(split_dir: Path, files: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode every listed file, class by class in sorted order (deterministic)."""
    counts = [len(class_files) for class_files in files]
    images = np.empty((sum(counts), 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(CIFAR10_CLASSES), dtype=np.int64), counts)
    i = 0
    for name, class_files in zip(CIFAR10_CLASSES, files, strict=True):
        for file in class_files:
            path = split_dir / name / file
            try:
                images[i] = _decode_image(path)
            except OSError as exc:  # truncated or not an image
                raise ValueError(f"{path}: cannot decode it ({exc})") from exc
            i += 1
    return images, labels


def _cache_path(root: Path, split: str, key: str) -> Path:
    return root / f"cifar10-{split}-folder-{key}.npz"


def _load_folder_cached(
    folder: Path, split: str, files: list[list[str]], root: Path, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Read the decoded cache if it is sound, else decode the folder and write the cache."""
    counts = np.array([len(f) for f in files], dtype=np.int64)
    path = _cache_path(root, split, key)
    if path.exists():
        try:
            return _read_cache(path, counts, str(folder))
        except _BROKEN_FILE_ERRORS as exc:
            warnings.warn(
                f"ignoring broken CIFAR-10 cache {path} ({type(exc).__name__}: {exc}); "
                "deleting it and decoding the images again",
                RuntimeWarning,
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
    log.info(
        "decoding %d images from %s/%s (once; cached in %s)", counts.sum(), folder, split, path
    )
    images, labels = _decode_folder(folder / split, files)
    _check_arrays(images, labels, counts)
    _write_cache(path, images=images, labels=labels, class_counts=counts,
                 source=np.array(str(folder)), version=np.array(_CACHE_VERSION))  # fmt: skip
    return images, labels


def _read_cache(path: Path, counts: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate a cache file; raises ``ValueError`` (or np.load's errors) if unsound."""
    # Open the file ourselves: np.load leaks its handle when the file is not a valid npz.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
        stored = {
            name: npz[name] for name in ("images", "labels", "class_counts", "source", "version")
        }
    if int(stored["version"]) != _CACHE_VERSION or str(stored["source"]) != source:
        raise ValueError(f"written for another source or version ({stored['source']})")
    if not np.array_equal(stored["class_counts"], counts):
        raise ValueError(
            f"per-class counts {stored['class_counts'].tolist()} differ from the "
            f"{counts.tolist()} files on disk"
        )
    _check_arrays(stored["images"], stored["labels"], counts)
    return stored["images"], stored["labels"]


def _write_cache(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed ``.npz`` atomically (``pooltools.atomic``)."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _check_arrays(images: np.ndarray, labels: np.ndarray, counts: np.ndarray | None) -> None:
    """Raise ``ValueError`` unless the arrays look like CIFAR-10 (with these per-class counts)."""
    n = len(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must be int64 ({images.shape[0]},), got {labels.dtype} {labels.shape}"
        )
    if n and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    found = np.bincount(labels, minlength=10)
    if (found == 0).any():
        missing = [CIFAR10_CLASSES[c] for c in np.flatnonzero(found == 0)]
        raise ValueError(f"all 10 classes must be present; missing {missing}")
    if counts is not None and not np.array_equal(found, counts):
        raise ValueError(f"per-class counts {found.tolist()}, expected {counts.tolist()}")


# ----------------------------------------------------------- sources 2 and 3: torchvision


def _load_torchvision(split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's files under ``root``, downloading them if they are absent or corrupt."""
    from torchvision.datasets import CIFAR10

    train = split == "train"
    looked_at = [f"{ENV_VAR}: not set"]
    tv = root / TV_FOLDER
    dataset = None
    if tv.is_dir():
        try:
            dataset = CIFAR10(root, train=train, download=False)
        except (RuntimeError, *_BROKEN_FILE_ERRORS) as exc:
            looked_at.append(f"{tv.resolve()}: unusable ({exc})")
    else:
        looked_at.append(f"{tv.resolve()}: does not exist")
    if dataset is None:
        try:
            dataset = CIFAR10(root, train=train, download=True)
        except Exception as exc:  # offline: URLError, socket errors, ...
            looked_at.append(
                f"torchvision download into {root.resolve()}: failed ({type(exc).__name__}: {exc})"
            )
            raise _not_found(looked_at, root) from None  # the message already says why
    if list(dataset.classes) != list(CIFAR10_CLASSES):
        raise ValueError(f"{tv}: class names {dataset.classes} differ from {list(CIFAR10_CLASSES)}")
    images = np.ascontiguousarray(dataset.data, dtype=np.uint8)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    # torchvision checked the files' md5 sums, so the counts are right; check the structure.
    _check_arrays(images, labels, None)
    return images, labels


# ------------------------------------------------------------------- subsets and stats


def subset(
    images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, stratified subset of ``n`` images, in a seeded shuffled order.

    Each class gets ``n // 10`` images, and the first ``n % 10`` classes one more, so a subset of
    any size is as balanced as it can be. Raises ``ValueError`` if ``n < 1`` or a class has
    fewer images than it needs.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, but got {n!r}")
    classes = len(CIFAR10_CLASSES)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(classes):
        want = n // classes + (c < n % classes)
        pool = np.flatnonzero(labels == c)
        if want > len(pool):
            raise ValueError(
                f"n={n} needs {want} images of class {c} ({CIFAR10_CLASSES[c]}), but only "
                f"{len(pool)} are available"
            )
        chosen.append(rng.choice(pool, size=want, replace=False))
    index = rng.permutation(np.concatenate(chosen))
    return images[index], labels[index]


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` of uint8 ``(N, H, W, 3)`` images on the 0..1 scale.

    Exact and light: a 256-bin histogram per channel gives the sum and the sum of squares as
    integers (no float copy of the dataset), so only the final division and sqrt round.
    ``std`` is the population std (``ddof=0``), as ``np.std``.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.size == 0:
        raise ValueError(
            f"images must be a non-empty uint8 array (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    values = np.arange(256, dtype=np.int64)
    hist = np.zeros((3, 256), dtype=np.int64)
    for start in range(0, len(images), 4096):  # chunks: bincount makes an int64 copy
        pixels = images[start : start + 4096].reshape(-1, 3)
        for c in range(3):
            hist[c] += np.bincount(pixels[:, c], minlength=256)
    count = images.size // 3
    mean, std = [], []
    for c in range(3):  # Python ints: count * squares - total**2 is exact (no cancellation)
        total, squares = int(hist[c] @ values), int(hist[c] @ (values * values))
        mean.append(total / (255 * count))
        std.append(math.sqrt((count * squares - total * total) / (255 * count) ** 2))
    return tuple(mean), tuple(std)


# --------------------------------------------------------------------- tensors, loaders


def to_tensor_batch(
    images: np.ndarray, stats: tuple[Sequence[float], Sequence[float]]
) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> normalized float32 ``(N, 3, H, W)``: ``(x/255 - mean) / std``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(stats) != 2 or len(stats[0]) != 3 or len(stats[1]) != 3:
        raise ValueError(f"stats must be (mean, std) with 3 values each, got {stats!r}")
    mean = torch.tensor(stats[0], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(stats[1], dtype=torch.float32).view(1, 3, 1, 1)
    if (std <= 0).any():
        raise ValueError(f"std must be positive in every channel, got {tuple(stats[1])}")
    # One float32 copy in NCHW order, then in-place: (x - 255*mean) / (255*std) = (x/255 - mean)/std.
    out = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
    return out.sub_(255 * mean).div_(255 * std)


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """The standard CIFAR augmentation, random crop and random flip, for a whole ``(N, C, H, W)``
    batch at once, drawn from ``generator``: the one augmentation of :mod:`pooltools.train`.

    Each image gets its own crop offset (zero padding, uniform in ``0..2*padding`` per axis) and
    a mirror with probability 1/2, as torchvision's ``RandomCrop(32, padding)`` +
    ``RandomHorizontalFlip`` would give it, but in one gather instead of ``N`` Python calls
    (several times faster per epoch on a CPU). On normalized tensors the zero padding is the
    dataset's mean colour. The result is ``channels_last`` in memory, the layout the training
    loop wants anyway.
    """
    if images.ndim != 4:
        raise ValueError(
            f"images must be a (N, C, H, W) batch, but got shape {tuple(images.shape)}"
        )
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, but got {padding!r}")
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)  # (N, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)  # (N,)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)  # (N,)
    flip = torch.rand(n, generator=generator) < 0.5  # (N,)
    rows = top[:, None] + torch.arange(h)  # (N, H)
    cols = left[:, None] + torch.arange(w)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a mirror reads columns backwards
    batch = torch.arange(n)[:, None, None]  # (N, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)  # (N, C, H, W), channels_last strides


class CIFAR10Tensors(Dataset):
    """CIFAR-10 as one normalized float32 ``(N, 3, 32, 32)`` tensor (converted once) and labels;
    ``dataset[i]`` returns ``(image, label)``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        stats: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
        self.stats = channel_stats(images) if stats is None else stats
        self.images = to_tensor_batch(images, self.stats)  # (N, 3, 32, 32) float32
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64))  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def make_loader(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 128,
    train: bool = False,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader of normalized float32 ``(B, 3, 32, 32)`` batches and int64 labels.

    ``stats`` defaults to ``channel_stats(images)``; pass the train split's stats for a test
    loader. ``train=True`` shuffles (augmentation happens per batch, in the training loop:
    :func:`random_crop_flip`); ``drop_last`` defaults to ``train``. The order is drawn from a
    generator seeded with ``seed``, so two loaders made with the same arguments yield identical
    batches whatever the global RNG; iterating one loader again gives the next epoch's order.
    """
    dataset = CIFAR10Tensors(images, labels, stats)
    generator = torch.Generator().manual_seed(seed)  # also seeds the workers' base seed
    drop_last = train if drop_last is None else drop_last
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
    )
