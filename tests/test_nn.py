"""ScratchMaxPool2d against PyTorch itself: values, indices, gradients, training, swapping."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pooltools.nn import ScratchMaxPool2d, scratch_max_pool2d, swap_maxpool
from pooltools.shapes import receptive_field

INF, NAN = float("inf"), float("nan")


def _valid(size: tuple[int, int], k, s, p, d, ceil_mode) -> bool:
    """Whether PyTorch accepts the config (it is the judge, not our own shape code)."""
    try:
        F.max_pool2d(torch.zeros(1, 1, *size), k, s, p, d, ceil_mode)
    except RuntimeError:
        return False
    return True


def _inputs(shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    """Three kinds of input: distinct values, many ties, and NaN / +inf / -inf sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    distinct = torch.randn(shape, generator=g)
    ties = torch.randint(0, 3, shape, generator=g).float()  # three values: ties everywhere
    special = torch.randn(shape, generator=g)
    pick = torch.rand(shape, generator=g)
    special[pick < 0.08] = NAN
    special[(pick >= 0.08) & (pick < 0.16)] = INF
    special[(pick >= 0.16) & (pick < 0.40)] = -INF  # enough for some all -inf windows
    return {"distinct": distinct, "ties": ties, "special": special}


def _assert_same_pool(
    ours: tuple[torch.Tensor, torch.Tensor], torch_: tuple[torch.Tensor, torch.Tensor], msg: str
) -> None:
    (out, idx), (ref_out, ref_idx) = ours, torch_
    assert out.shape == ref_out.shape and out.dtype == ref_out.dtype, msg
    assert torch.equal(out.isnan(), ref_out.isnan()), f"NaN positions differ: {msg}"
    assert torch.equal(out.nan_to_num(), ref_out.nan_to_num()), f"values differ: {msg}"  # inf kept
    assert torch.equal(idx, ref_idx), f"indices differ: {msg}"


KERNELS = [1, 2, 3, (2, 3)]
STRIDES = [None, 1, 2, (1, 2)]
PADDINGS = [0, 1, (1, 0)]
DILATIONS = [1, 2]
SIZES = [(5, 7), (6, 6)]
GRID = [
    (size, k, s, p, d, c)
    for size, k, s, p, d, c in itertools.product(
        SIZES, KERNELS, STRIDES, PADDINGS, DILATIONS, [False, True]
    )
]


@pytest.mark.parametrize("size,k,s,p,d,ceil_mode", GRID)
def test_forward_values_and_indices_match_torch(size, k, s, p, d, ceil_mode):
    """Every config PyTorch accepts gives identical outputs and indices; every config it
    refuses we refuse too (ValueError instead of its RuntimeError)."""
    if not _valid(size, k, s, p, d, ceil_mode):
        with pytest.raises(ValueError):
            scratch_max_pool2d(torch.zeros(1, 1, *size), k, s, p, d, ceil_mode)
        return
    for kind, x in _inputs((2, 3, *size), seed=sum(size)).items():
        ours = scratch_max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
        ref = F.max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
        _assert_same_pool(ours, ref, f"{kind} input, k={k} s={s} p={p} d={d} ceil={ceil_mode}")


def test_hand_checkable_example():
    """A 4x4 plane, 2x2 windows: each output is the largest of four numbers we can read."""
    x = torch.tensor([[1.0, 3, 2, 0], [4, 2, 1, 5], [0, 0, 7, 7], [0, 0, 7, 6]]).view(1, 1, 4, 4)
    out, idx = scratch_max_pool2d(x, 2, return_indices=True)
    assert out.view(2, 2).tolist() == [[4, 5], [0, 7]]
    # flat index h*W + w; the all-zero window and the 7-7-7 window keep their first maximum
    assert idx.view(2, 2).tolist() == [[4, 7], [8, 10]]


def test_ties_nan_and_inf_follow_torch_rules():
    """First maximum wins a tie; the window's last NaN wins; all -inf points at the first tap."""
    row = torch.tensor([[[[2.0, 2, NAN, 1, NAN, -INF, -INF, -INF]]]])
    out, idx = scratch_max_pool2d(row, (1, 3), (1, 1), return_indices=True)
    ref_out, ref_idx = F.max_pool2d(row, (1, 3), (1, 1), return_indices=True)
    _assert_same_pool((out, idx), (ref_out, ref_idx), "tie/NaN row")
    # windows: [2,2,nan] [2,nan,1] [nan,1,nan] [1,nan,-inf] [nan,-inf,-inf] [-inf,-inf,-inf]
    assert idx.flatten().tolist() == [2, 2, 4, 4, 4, 5]
    assert out.flatten()[:5].isnan().all() and out.flatten()[5].item() == -INF
    out, idx = scratch_max_pool2d(torch.tensor([[[[3.0, 3.0]]]]), (1, 2), return_indices=True)
    assert idx.item() == 0  # a tie: the first maximum


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "cfg",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=1, dilation=2, ceil_mode=True),
    ],
)
def test_gradient_matches_autograd_through_nn_maxpool2d(dtype, cfg):
    """Same gradient as nn.MaxPool2d, bit for bit, also with ties and overlapping windows:
    both add the contributions of one input pixel in the same (output raster) order."""
    x = torch.randint(0, 4, (2, 3, 9, 8)).to(dtype)  # ties on purpose: the winner must agree
    grad_out = None
    grads = []
    for pool in (nn.MaxPool2d(**cfg), ScratchMaxPool2d(**cfg)):
        leaf = x.clone().requires_grad_()
        out = pool(leaf)
        if grad_out is None:
            grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        out.backward(grad_out)
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize(
    "cfg",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True),
    ],
)
def test_gradcheck_and_gradgradcheck_float64(cfg):
    """Finite differences agree with our backward (and with the backward of the backward).

    The input is a permutation of distinct numbers spaced by 1, far more than gradcheck's
    eps=1e-6 nudge, so no window has a tie and max is differentiable at every point."""
    x = torch.randperm(2 * 2 * 7 * 6, generator=torch.Generator().manual_seed(0))
    x = x.double().view(2, 2, 7, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: scratch_max_pool2d(t, **cfg), (x,))
    assert torch.autograd.gradgradcheck(lambda t: scratch_max_pool2d(t, **cfg), (x,))


def test_backward_saves_only_the_indices():
    """Like PyTorch, the graph keeps the int64 indices, not the input."""
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    out = scratch_max_pool2d(x, 2)
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].dtype == torch.int64 and saved[0].shape == out.shape


def test_unbatched_input():
    """(C, H, W) in, (C, out_h, out_w) out, like nn.MaxPool2d."""
    x = torch.randn(3, 7, 7)
    ours = ScratchMaxPool2d(3, 2, 1, return_indices=True)(x)
    ref = nn.MaxPool2d(3, 2, 1, return_indices=True)(x)
    _assert_same_pool(ours, ref, "3-D input")
    assert ours[0].shape == (3, 4, 4)


@pytest.mark.parametrize("cfg", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_channels_last_input(cfg):
    """channels_last in: same values, indices and gradient as PyTorch's channels_last kernel,
    and channels_last out (output, indices, input gradient), as PyTorch does."""
    x = _inputs((2, 8, 9, 9), seed=3)["special"].to(memory_format=torch.channels_last)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = scratch_max_pool2d(x_ours, return_indices=True, **cfg)
    ref = F.max_pool2d(x_ref, return_indices=True, **cfg)
    _assert_same_pool(ours, ref, f"channels_last {cfg}")
    for t in (*ours, *ref):
        assert t.is_contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(ref[0].shape)
    ours[0].backward(grad_out)
    ref[0].backward(grad_out)
    assert torch.equal(x_ours.grad, x_ref.grad)
    assert x_ours.grad.is_contiguous(memory_format=torch.channels_last)


def test_empty_batch():
    x = torch.randn(0, 3, 8, 8)
    assert scratch_max_pool2d(x, 2).shape == F.max_pool2d(x, 2).shape == (0, 3, 4, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = _inputs((2, 3, 11, 9), seed=5)["special"]
    ours = scratch_max_pool2d(x.cuda(), 3, 2, 1, return_indices=True)
    ref = F.max_pool2d(x.cuda(), 3, 2, 1, return_indices=True)
    _assert_same_pool(tuple(t.cpu() for t in ours), tuple(t.cpu() for t in ref), "cuda")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sh=st.integers(1, 3),
    sw=st.integers(1, 3),
    ph=st.integers(0, 2),
    pw=st.integers(0, 2),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    ceil_mode=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_configs_match_torch(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode, seed):
    """Random rectangular configs: PyTorch and we accept the same ones and agree on them."""
    k, s, p, d = (kh, kw), (sh, sw), (ph, pw), (dh, dw)
    if not _valid((h, w), k, s, p, d, ceil_mode):
        with pytest.raises(ValueError):
            scratch_max_pool2d(torch.zeros(n, c, h, w), k, s, p, d, ceil_mode)
        return
    x = _inputs((n, c, h, w), seed)["ties"]
    ours = scratch_max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    ref = F.max_pool2d(x, k, s, p, d, ceil_mode, return_indices=True)
    _assert_same_pool(ours, ref, f"k={k} s={s} p={p} d={d} ceil={ceil_mode}")


@pytest.mark.parametrize(
    "bad,error,match",
    [
        (dict(kernel_size=0), ValueError, "kernel_size must be greater than zero"),
        (dict(kernel_size=2, stride=0), ValueError, "stride must be greater than zero"),
        (dict(kernel_size=2, padding=2), ValueError, "at most half of kernel_size"),
        (dict(kernel_size=2, dilation=0), ValueError, "dilation must be greater than zero"),
        (dict(kernel_size=(2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
        (dict(kernel_size=2.0), TypeError, "kernel_size must be an int or a pair"),
    ],
)
def test_bad_parameters_are_refused_when_the_layer_is_built(bad, error, match):
    with pytest.raises(error, match=match):
        ScratchMaxPool2d(**bad)


def test_bad_inputs_are_refused():
    pool = ScratchMaxPool2d(2)
    with pytest.raises(ValueError, match="3-D .* or 4-D .* but got a 2-D input"):
        pool(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="floating point or integer dtype.*but got torch.bool"):
        pool(torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="output size is too small"):
        pool(torch.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="only the batch may be empty"):
        pool(torch.zeros(1, 0, 4, 4))


@pytest.mark.parametrize("args", [(2,), (3, 2, 1), ((2, 3), (1, 2), (1, 0), (2, 1), False, True)])
def test_repr_and_attributes_match_nn_maxpool2d(args):
    ours, ref = ScratchMaxPool2d(*args), nn.MaxPool2d(*args)
    assert ours.extra_repr() == ref.extra_repr()
    assert repr(ours).replace("ScratchMaxPool2d", "MaxPool2d") == repr(ref)
    for name in ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"):
        assert getattr(ours, name) == getattr(ref, name), name


def _small_cnn(pool: dict, size: int = 16) -> nn.Sequential:
    """conv-bn-relu-pool x2 + linear on (3, size, size) inputs; ``side`` after the two pools."""
    side = F.max_pool2d(F.max_pool2d(torch.zeros(1, 1, size, size), **pool), **pool).shape[-1]
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),  # (8, 16, 16)
        nn.MaxPool2d(**pool),  # (8, 8, 8) for k=2 s=2
        nn.Sequential(  # nested on purpose: swap_maxpool must recurse
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),  # (16, 8, 8)
            nn.MaxPool2d(**pool),  # (16, 4, 4) for k=2 s=2
        ),
        nn.Flatten(),  # (16 * side * side,)
        nn.Linear(16 * side * side, 10),  # (10,)
    )


def _train_losses(model: nn.Module, steps: int = 5) -> list[float]:
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_training_with_scratch_pool_gives_identical_losses(pool):
    """Five SGD steps of a seeded conv-bn-relu-pool x2 CNN: tolerance ZERO (exact equality).

    Exact, not merely ~1e-6, because nothing in the two runs differs in floating point: the
    forward picks the same maximum (a max is an exact selection, no rounding), and the backward
    gives each input pixel the sum of the same gradients in the same order (output raster order
    in both PyTorch's CPU kernel and our ``scatter_add``; for k=2 s=2 there is at most one term).
    Every other layer runs the same PyTorch code on the same numbers. On CUDA, ``scatter_add``'s
    atomic adds could reorder overlapping-window sums and break exactness at the ~1e-7 level.
    """
    torch.manual_seed(0)
    reference = _small_cnn(pool)
    torch.manual_seed(0)
    scratch = swap_maxpool(_small_cnn(pool))
    assert _train_losses(reference) == _train_losses(scratch)
    for (name, a), (_, b) in zip(
        reference.state_dict().items(), scratch.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_swap_maxpool_replaces_every_maxpool_with_the_same_settings():
    model = _small_cnn(dict(kernel_size=2, padding=1, dilation=2, ceil_mode=True))
    before = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    rf_before = receptive_field(model)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    ref = model(x)
    assert swap_maxpool(model) is model
    after = [m for m in model.modules() if isinstance(m, ScratchMaxPool2d)]
    assert len(before) == len(after) == 2
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    for old, new in zip(before, after, strict=True):
        assert old.extra_repr() == new.extra_repr()
    assert torch.equal(model(x), ref)
    assert receptive_field(model) == rf_before  # the receptive field helper knows our layer


def test_swap_maxpool_on_a_bare_pool_and_idempotence():
    new = swap_maxpool(nn.MaxPool2d(3, 2, 1, return_indices=True))
    assert isinstance(new, ScratchMaxPool2d) and new.return_indices
    model = nn.Sequential(ScratchMaxPool2d(2))
    assert swap_maxpool(model)[0].__class__ is ScratchMaxPool2d


# ---------------------------------------------------------------------------------------------
# Regressions found by running third-party pooling tests (PyTorch's own, OpInfo samples, ONNX's
# MaxPool cases) against ScratchMaxPool2d; each compares with PyTorch.


def test_backward_of_an_empty_batch_gives_an_empty_gradient_as_pytorch_does():
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    ref = torch.randn(0, 3, 8, 8, requires_grad=True)
    ScratchMaxPool2d(3, 2, 1)(x).sum().backward()
    nn.MaxPool2d(3, 2, 1)(ref).sum().backward()
    assert x.grad.shape == ref.grad.shape == (0, 3, 8, 8)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=(2,)),
        dict(kernel_size=[3], stride=(2,), padding=(1,)),
        dict(kernel_size=2, stride=()),
        dict(kernel_size=(3, 2), stride=[], dilation=(2,)),
    ],
)
def test_the_spellings_pytorch_accepts_are_accepted(kwargs):
    x = torch.randn(2, 3, 9, 10)
    assert torch.equal(ScratchMaxPool2d(**kwargs)(x), nn.MaxPool2d(**kwargs)(x))
    assert torch.equal(scratch_max_pool2d(x, **kwargs), F.max_pool2d(x, **kwargs))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_integer_inputs_pool_like_nn_maxpool2d(dtype):
    x = torch.randint(0 if dtype == torch.uint8 else -9, 9, (2, 3, 9, 9)).to(dtype)
    x[0, 0, :3, :3] = torch.iinfo(dtype).min  # a window of the lowest value, beside padding
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        ours = ScratchMaxPool2d(k, s, p, return_indices=True)(x)
        ref = nn.MaxPool2d(k, s, p, return_indices=True)(x)
        assert ours[0].dtype == ref[0].dtype == dtype
        assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1]), (k, s, p)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_reduced_precision_gradients_with_overlapping_windows_are_pytorchs_bit_for_bit(dtype, k, s, p):
    # PyTorch's CPU backward adds each window's gradient in output order, rounding after every
    # addition; a float32 accumulation rounded once differs in the last bits (it did, in 50 of 50
    # random cases, before the fix).
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 11, 11, generator=gen).to(dtype)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = F.max_pool2d(x_ref, k, s, p)
    grad = torch.randn(out_ref.shape, generator=gen).to(dtype)
    out_ref.backward(grad)
    scratch_max_pool2d(x_ours, k, s, p).backward(grad)
    assert torch.equal(x_ours.grad, x_ref.grad)
