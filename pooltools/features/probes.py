"""Linear probes (Alain & Bengio 2016): how linearly decodable a layer's features are
(:func:`linear_probe`, :func:`linear_probes`, :func:`fit_probe`), against a fair x axis
(:func:`conv_depths`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from pooltools.features.hooks import _resolve, capture, feature_layers

__all__ = ["ProbeResult", "linear_probe", "linear_probes", "conv_depths", "fit_probe"]


# ------------------------------------------------------------------------------ linear probe
@dataclass(frozen=True)
class ProbeResult:
    """Accuracy (0..1) of the linear probe on its training and test features; ``features``:
    their number (the layer's channels)."""

    train_acc: float
    test_acc: float
    features: int


def _pooled(act: torch.Tensor) -> torch.Tensor:
    return act.mean(dim=(2, 3)) if act.dim() == 4 else act.flatten(1)  # (N, C)


def _standardize(f_train: torch.Tensor, f_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets scaled with the training mean and std (float64 in, float32 out); features that
    are constant on the training set (dead channels) become 0, not NaN."""
    mu, sd = f_train.mean(0), f_train.std(0, unbiased=False)  # (F,), (F,)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    return ((f_train - mu) / sd).float(), ((f_test - mu) / sd).float()


def linear_probe(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    layer: str,
    epochs: int = 30,
    lr: float = 0.01,
    seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
) -> ProbeResult:
    """Train a linear softmax classifier on ``layer``'s globally average-pooled features.

    ``train`` and ``test`` are ``(images (N, C, H, W) normalized, labels (N,))``. Features are
    computed once (:func:`capture`, eval mode), standardized with the training mean and std
    (constant features stay 0), and the classifier (zero-initialized, so only the seeded
    mini-batch order is random) is trained with Adam (``lr``, ``weight_decay``) and cross-entropy
    for ``epochs`` epochs. Softmax regression is convex: the result measures the features, not
    the optimizer.
    """
    return linear_probes(
        model,
        layers=[layer],
        train=train,
        test=test,
        epochs=epochs,
        lr=lr,
        seed=seed,
        batch_size=batch_size,
        weight_decay=weight_decay,
    )[layer]


def linear_probes(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    layers: Sequence[str],
    epochs: int = 30,
    lr: float = 0.01,
    seed: int = 0,
    batch_size: int = 256,
    weight_decay: float = 0.0,
) -> dict[str, ProbeResult]:
    """:func:`linear_probe` for several layers: ``{layer: ProbeResult}``, in the order given.

    The features of every layer come from one pass over the images (the expensive part); each
    layer's probe is then trained exactly as :func:`linear_probe` trains it alone.
    """
    (x_train, y_train), (x_test, y_test) = train, test
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(
            f"images and labels differ in length: train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    names = list(_resolve(model, layers))
    feats_train = capture(
        model, images=x_train, layers=names, batch_size=batch_size, reduce=_pooled
    )  # {layer: (N, F)}
    feats_test = capture(model, images=x_test, layers=names, batch_size=batch_size, reduce=_pooled)
    classes = int(max(y_train.max(), y_test.max())) + 1
    return {
        name: _fit_probe(
            *_standardize(feats_train[name].double(), feats_test[name].double()),
            y_train,
            y_test,
            classes,
            epochs,
            lr,
            seed,
            batch_size,
            weight_decay,
        )  # fmt: skip
        for name in names
    }


def _fit_probe(
    f_train: torch.Tensor,
    f_test: torch.Tensor,
    y_train: torch.Tensor,
    y_test: torch.Tensor,
    classes: int,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int,
    weight_decay: float,
) -> ProbeResult:
    """Softmax regression from zero weights on standardized features ``(N, F)``."""
    probe = nn.Linear(f_train.shape[1], classes)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            for idx in torch.randperm(len(f_train), generator=generator).split(batch_size):
                loss = F.cross_entropy(probe(f_train[idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        train_acc = (probe(f_train).argmax(1) == y_train).double().mean().item()
        test_acc = (probe(f_test).argmax(1) == y_test).double().mean().item()
    return ProbeResult(train_acc, test_acc, int(f_train.shape[1]))


def conv_depths(model: nn.Module) -> dict[str, int]:
    """For every :func:`feature_layers` layer, the number of convolutions the input has passed.

    Every ``nn.Conv2d`` up to and including the layer counts (``allconv``'s learned stride-2
    ``stage1.pool`` is one; a fixed blur is not). This is the x axis on which layers of networks
    with and without pooling are compared like with like.
    """
    wanted = set(feature_layers(model))
    depths: dict[str, int] = {}
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            count += 1
        if name in wanted:  # a container (allconv's pool) is visited before its conv: recount
            inner = sum(isinstance(m, nn.Conv2d) for m in module.modules())
            depths[name] = count + inner
    return depths


def fit_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    l2: float = 1e-3,
    max_iter: int = 200,
) -> ProbeResult:
    """A linear softmax probe on precomputed features ``(N, F)``, solved to convergence.

    Features are standardized with the training mean and std (constant ones become 0); the
    classifier starts from zero and minimizes mean cross-entropy plus ``l2 * |W|^2 / 2`` with
    scipy's full-batch L-BFGS-B (float64, on one thread: fast on a busy CPU too). The problem is convex and the solver has no
    randomness, so the same features give the same probe: any spread between probes comes
    from the data they were given. Use it with features captured once (:func:`capture` with a
    ``reduce``) to probe many layers and subsets cheaply.
    """
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if f_train.dim() != 2 or f_test.dim() != 2 or f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            f"features must be (N, F) with the same F, but got train {tuple(f_train.shape)} "
            f"and test {tuple(f_test.shape)}"
        )
    if len(f_train) != len(y_train) or len(f_test) != len(y_test):
        raise ValueError(
            f"features and labels differ in length: train {len(f_train)} vs {len(y_train)}, "
            f"test {len(f_test)} vs {len(y_test)}"
        )
    x_train, x_test = (t.double() for t in _standardize(f_train.double(), f_test.double()))
    classes = int(max(y_train.max(), y_test.max())) + 1
    onehot = F.one_hot(y_train, classes).double()  # (N, K)
    n, d = x_train.shape

    def loss_and_grad(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.from_numpy(theta_np)
        weight, bias = theta[: d * classes].view(d, classes), theta[d * classes :]
        log_p = torch.log_softmax(x_train @ weight + bias, dim=1)  # (N, K)
        loss = -(onehot * log_p).sum() / n + 0.5 * l2 * weight.square().sum()
        delta = (log_p.exp() - onehot) / n  # (N, K): d loss / d logits
        grad = torch.cat([(x_train.T @ delta + l2 * weight).flatten(), delta.sum(0)])
        return float(loss), grad.numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only waits (badly, on a busy CPU)
    try:
        theta = scipy.optimize.minimize(
            loss_and_grad, np.zeros(d * classes + classes), jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter},
        ).x  # fmt: skip
        weight = torch.from_numpy(theta[: d * classes]).view(d, classes)
        bias = torch.from_numpy(theta[d * classes :])
        train_acc = ((x_train @ weight + bias).argmax(1) == y_train).double().mean().item()
        test_acc = ((x_test @ weight + bias).argmax(1) == y_test).double().mean().item()
    finally:
        torch.set_num_threads(threads)
    return ProbeResult(train_acc, test_acc, int(d))
