"""Figures that show what a pooling layer does: one window, input next to output, image grids.

Every number and every highlighted cell comes from code: outputs from PyTorch's own
``F.max_pool2d`` / ``F.avg_pool2d``, window positions from :class:`pooltools.shapes.PoolParams`, which the tests
check against PyTorch's ``return_indices``. Functions return a ``matplotlib.figure.Figure`` and never
call ``plt.show``; in Jupyter the returned figure displays itself.

Two kinds of input are understood:

* a 2-D matrix ``(H, W)``: small ones (up to 16 cells a side with padding) are drawn as a toy
  grid with the number written in every cell; larger ones as a grey image with a colorbar;
* an image ``(H, W, 3)`` (RGB, uint8 in 0..255 or float in 0..1), pooled channel by channel.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import animation, patheffects
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, ConnectionPatch, Rectangle
from matplotlib.transforms import offset_copy

from pooltools.shapes import (
    Arithmetic,
    Pair,
    PoolArgs,
    PoolParams,
    argmax_cells,
    arithmetic,
    as_cell,
    pair_text,
)

__all__ = [
    "new_figure",
    "as_grid",
    "pool_array",
    "format_value",
    "shape_text",
    "plot_matrix",
    "plot_window",
    "plot_pooling",
    "plot_window_values",
    "show_image_grid",
    "plot_arithmetic",
    "plot_floor_vs_ceil",
    "window_animation",
    "animation_html",
]

HIGHLIGHT = "#ff7f0e"  # a window and the output cell it produces share this colour
ARGMAX = "#c00000"  # the winner of a max-pooling window
PADDING_FACE = "#d9d9d9"
CHANNEL_COLOURS = ("#ff2020", "#20c020", "#2060ff")  # argmax markers of R, G and B
TOY_LIMIT = 16  # a 2-D matrix is drawn with numbers when its padded grid fits in 16x16 cells
CELL_INCHES = 0.5  # side of one toy-grid cell in a figure sized by this module

# Pale enough for black numbers; −∞ (a window that saw only padding) is drawn like padding.
_PALE_BLUES = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.04, 0.6, 256)))
_PALE_BLUES = _PALE_BLUES.with_extremes(under=PADDING_FACE, bad=PADDING_FACE)
_OUTLINE = [patheffects.withStroke(linewidth=4.5, foreground="black")]


# --------------------------------------------------------------------------- figures that show


class _NotebookFigure(Figure):
    """A Figure that Jupyter shows as a PNG even when pyplot was never imported.

    The figures here are not registered with pyplot (so nothing is shown twice and nothing
    leaks), but then IPython's inline backend may not be loaded to render them; ``_repr_png_``
    covers that case. Where the backend is loaded, its own formatter is used instead.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def new_figure(figsize: tuple[float, float], layout: str = "constrained") -> Figure:
    """A pyplot-free figure that displays itself in Jupyter; every figure here starts with it."""
    return _NotebookFigure(figsize=figsize, layout=layout)


# --------------------------------------------------------------------------- pure helpers


def as_grid(x: Any) -> np.ndarray:
    """``x`` as a NumPy array of shape ``(H, W)`` or ``(H, W, 3)``, dtype kept.

    Accepts NumPy arrays, tensors and nested lists; ``(H, W, 1)`` becomes ``(H, W)``.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    ok = (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)) and arr.size > 0
    if not ok:
        hint = (
            "; for a channels-first (3, H, W) tensor use x.permute(1, 2, 0)"
            if arr.ndim == 3 and arr.shape[0] in (1, 3)
            else ""
        )
        raise ValueError(
            f"expected a 2-D matrix (H, W) or an image (H, W, 3), but got shape "
            f"{tuple(arr.shape)}{hint}"
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"expected numbers (int, float or uint8), but got dtype {arr.dtype}")
    return arr


@dataclass(frozen=True)
class PoolResult:
    """What PyTorch returns for one pooling call, laid out like the input.

    ``output``: float64, ``(H_out, W_out)`` for a matrix or ``(H_out, W_out, C)`` for an image.
    ``argmax``: same shape, int64 flat index ``row * W + col`` into the unpadded input of the cell
    each max came from (PyTorch's ``return_indices``); ``None`` for average pooling.
    """

    output: np.ndarray
    argmax: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int]:
        """Spatial output shape ``(H_out, W_out)``."""
        return int(self.output.shape[0]), int(self.output.shape[1])


def pool_array(x: Any, *, op: str = "max", **pool: Unpack[PoolArgs]) -> PoolResult:
    """Pool a matrix or an image (each channel on its own) with PyTorch, in float64.

    ``pool`` (kernel_size, stride, padding, dilation, ceil_mode) goes to PyTorch unchanged, so
    settings it refuses raise PyTorch's own error; that includes ``op="avg"`` with a dilation
    other than 1 (``avg_pool2d`` has no ``dilation``).
    """
    if op not in ("max", "avg"):
        raise ValueError(f"op must be 'max' or 'avg', but got {op!r}")
    arr = as_grid(x)
    chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    t = torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float64))[None]  # (1, C, H, W)
    argmax = None
    if op == "max":
        out, idx = F.max_pool2d(t, **pool, return_indices=True)
        argmax = idx[0].numpy()
    else:  # count_include_pad=True; a dilation other than 1 gets PyTorch's own refusal
        if pool.get("dilation", 1) in (1, (1, 1), [1, 1]):
            pool = {k: v for k, v in pool.items() if k != "dilation"}  # type: ignore[assignment]
        out = F.avg_pool2d(t, **pool)
    out = out[0].numpy()
    if arr.ndim == 2:
        return PoolResult(out[0], None if argmax is None else argmax[0])
    return PoolResult(
        np.moveaxis(out, 0, -1), None if argmax is None else np.moveaxis(argmax, 0, -1)
    )


def format_value(v: float) -> str:
    """Short text for a cell: ``3``, ``2.5``, ``0.33``, ``−∞``."""
    v = float(v)
    if np.isnan(v):
        return ""
    if np.isinf(v):
        return "∞" if v > 0 else "−∞"
    if abs(v - round(v)) < 1e-9:
        return str(int(round(v))).replace("-", "−")
    return f"{v:.2f}".rstrip("0").rstrip(".").replace("-", "−")


def shape_text(arr: np.ndarray) -> str:
    """``"4×4"`` for a matrix, ``"32×32×3"`` for an image."""
    return "×".join(str(n) for n in arr.shape)


# --------------------------------------------------------------------------- drawing helpers


@dataclass(frozen=True)
class _Canvas:
    """The region of input coordinates a figure shows: the input, its padding, and any part of a
    ``ceil_mode`` window that hangs past the padding (``overhang``)."""

    top: int
    left: int
    bottom: int
    right: int
    height: int  # of the input
    width: int
    pad: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top + 1, self.right - self.left + 1

    def kind(self, r: int, c: int) -> str:
        """``"input"``, ``"padding"`` or ``"overhang"`` for the cell at row r, column c."""
        ph, pw = self.pad
        if 0 <= r < self.height and 0 <= c < self.width:
            return "input"
        if -ph <= r < self.height + ph and -pw <= c < self.width + pw:
            return "padding"
        return "overhang"


def _canvas(arr: np.ndarray, out_shape: Pair, params: PoolParams) -> _Canvas:
    """The input, its padding and any ceil_mode overhang of the last window."""
    h, w = arr.shape[:2]
    last_rows, last_cols = params.window((out_shape[0] - 1, out_shape[1] - 1))
    ph, pw = params.padding
    return _Canvas(-ph, -pw, max(h - 1 + ph, int(last_rows[-1])), max(w - 1 + pw, int(last_cols[-1])),
                   h, w, (ph, pw))  # fmt: skip


def _display(arr: np.ndarray, uint8_scale: bool) -> np.ndarray:
    """An image array as imshow wants it: floats in 0..1."""
    img = arr.astype(np.float64) / (255.0 if uint8_scale else 1.0)
    return np.clip(img, 0.0, 1.0)


def _halo(colour) -> list:
    """A rim of the cell's own colour around a number, so a line crossing it stays readable."""
    return [patheffects.withStroke(linewidth=3.5, foreground=colour)]


def _fontsize(texts: Sequence[str], cell_inches: float = CELL_INCHES) -> float:
    longest = max((len(t) for t in texts), default=1)
    return float(min(13.0, cell_inches * 72 * 0.85 / max(2.0, 0.62 * longest)))


def _style_grid_axes(ax: Axes, canvas: _Canvas, annotate: bool) -> None:
    ax.set_xlim(canvas.left - 0.5, canvas.right + 0.5)
    ax.set_ylim(canvas.bottom + 0.5, canvas.top - 0.5)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if annotate:
        ax.set_xticks(np.arange(canvas.left, canvas.right + 1))
        ax.set_yticks(np.arange(canvas.top, canvas.bottom + 1))
        ax.set_xticks(np.arange(canvas.left - 0.5, canvas.right + 1), minor=True)
        ax.set_yticks(np.arange(canvas.top - 0.5, canvas.bottom + 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="minor", length=0)
        ax.tick_params(which="major", length=0, labelsize=8)
        ax.set_axisbelow(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    else:
        ax.tick_params(labelsize=8)


def _draw_input(
    ax: Axes,
    arr: np.ndarray,
    canvas: _Canvas,
    *,
    annotate: bool,
    op: str,
    norm: Normalize,
    bold: set[tuple[int, int]] = frozenset(),
):
    """Input, padding and overhang on ``ax``; returns the image artist (for a colorbar).

    Long (about 70 lines) because it draws one panel step by step (cells, padding, overhang, numbers).
    """
    h, w = arr.shape[:2]
    ph, pw = canvas.pad
    if ph or pw:
        ax.add_patch(
            Rectangle(
                (-pw - 0.5, -ph - 0.5), w + 2 * pw, h + 2 * ph,
                facecolor=PADDING_FACE, edgecolor="#9a9a9a", hatch=None if annotate else "///",
                linewidth=0, zorder=0, gid="padding",
            )
        )  # fmt: skip
    pad_right, pad_bottom = w - 1 + pw, h - 1 + ph
    if canvas.right > pad_right or canvas.bottom > pad_bottom:
        for xy, width, height in (
            ((pad_right + 0.5, canvas.top - 0.5), canvas.right - pad_right, canvas.shape[0]),
            ((canvas.left - 0.5, pad_bottom + 0.5), pad_right - canvas.left + 1,
             canvas.bottom - pad_bottom),
        ):  # fmt: skip
            if width > 0 and height > 0:
                ax.add_patch(
                    Rectangle(
                        xy, width, height, facecolor="white", edgecolor="#b0b0b0", hatch="..",
                        linewidth=0, zorder=0, gid="overhang",
                    )
                )  # fmt: skip
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    if arr.ndim == 3:
        image = ax.imshow(
            _display(arr, arr.dtype == np.uint8), extent=extent, interpolation="nearest", zorder=1
        )
    else:
        cmap = _PALE_BLUES if annotate else "gray"
        image = ax.imshow(
            arr, cmap=cmap, norm=norm, extent=extent, interpolation="nearest", zorder=1
        )
    if not (ph or pw) and not annotate:
        ax.add_patch(
            Rectangle(
                (-0.5, -0.5), w, h, fill=False, edgecolor="black", linewidth=0.8, zorder=2,
                gid="input-border",
            )
        )  # fmt: skip
    if annotate:
        pad_text = "−∞" if op == "max" else "0"
        texts = {(r, c): format_value(arr[r, c]) for r in range(h) for c in range(w)}
        size = _fontsize([*texts.values(), pad_text])
        for (r, c), text in texts.items():
            heavy = (r, c) in bold
            ax.text(
                c, r, text, ha="center", va="center", fontsize=size, zorder=5,
                fontweight="bold" if heavy else "normal", color=ARGMAX if heavy else "black",
                path_effects=_halo(_PALE_BLUES(norm(arr[r, c]))),
            )  # fmt: skip
        for r in range(canvas.top, canvas.bottom + 1):
            for c in range(canvas.left, canvas.right + 1):
                if canvas.kind(r, c) == "padding":
                    ax.text(
                        c, r, pad_text, ha="center", va="center", fontsize=size * 0.85,
                        color="#555555", zorder=5, path_effects=_halo(PADDING_FACE),
                    )  # fmt: skip
    return image


def _draw_window(ax: Axes, rows: np.ndarray, cols: np.ndarray, annotate: bool) -> None:
    """Highlight the window: one rectangle, or one square per tap when the window is dilated."""
    fill = "none"  # an outline keeps the cells' own colours and numbers readable
    lw = 3.5 if annotate else 2.2
    effects = None if annotate else _OUTLINE
    dilated = (len(rows) > 1 and rows[1] - rows[0] > 1) or (len(cols) > 1 and cols[1] - cols[0] > 1)
    if not dilated:
        ax.add_patch(
            Rectangle(
                (cols[0] - 0.5, rows[0] - 0.5), len(cols), len(rows), facecolor=fill,
                edgecolor=HIGHLIGHT, linewidth=lw, zorder=4, gid="window", path_effects=effects,
            )
        )  # fmt: skip
        return
    ax.add_patch(
        Rectangle(
            (cols[0] - 0.5, rows[0] - 0.5), cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1,
            fill=False, edgecolor=HIGHLIGHT, linewidth=1.2, linestyle="--", zorder=4,
            gid="window-extent",
        )
    )  # fmt: skip
    for r, c in itertools.product(rows, cols):
        ax.add_patch(
            Rectangle(
                (c - 0.5, r - 0.5), 1, 1, facecolor=fill, edgecolor=HIGHLIGHT, linewidth=lw,
                zorder=4, gid="window-cell", path_effects=effects,
            )
        )  # fmt: skip


def _draw_argmax(ax: Axes, cells: Sequence[tuple[int, int]], annotate: bool) -> None:
    """Mark where each channel's maximum sits: a circle (matrix) or coloured dots (image)."""
    if annotate or len(cells) == 1:
        r, c = cells[0]
        if annotate:
            ax.add_patch(
                Circle((c, r), 0.4, fill=False, edgecolor=ARGMAX, linewidth=2.2, zorder=6,
                       gid="argmax")
            )  # fmt: skip
        else:
            ax.plot(c, r, "o", ms=7, mfc="none", mec=ARGMAX, mew=2, zorder=6, gid="argmax")
        return
    # Offsets in points, not pixels: three winners in one small pixel stay three visible dots.
    for (r, c), colour, dx in zip(cells, CHANNEL_COLOURS, (-5, 0, 5), strict=False):
        shifted = offset_copy(ax.transData, fig=ax.figure, x=dx, y=0, units="points")
        ax.plot(c, r, "o", ms=5, mfc=colour, mec="black", mew=0.7, zorder=6, gid="argmax",
                transform=shifted)  # fmt: skip


def _draw_output(
    ax: Axes, out: np.ndarray, cell: tuple[int, int], *, annotate: bool, norm, uint8_scale: bool
):
    ho, wo = out.shape[:2]
    extent = (-0.5, wo - 0.5, ho - 0.5, -0.5)
    if out.ndim == 3:
        image = ax.imshow(_display(out, uint8_scale), extent=extent, interpolation="nearest")
    else:
        cmap = _PALE_BLUES if annotate else "gray"
        image = ax.imshow(out, cmap=cmap, norm=norm, extent=extent, interpolation="nearest")
    canvas = _Canvas(0, 0, ho - 1, wo - 1, ho, wo, (0, 0))
    _style_grid_axes(ax, canvas, annotate)
    ax.yaxis.tick_right()  # keeps the gap free for the arrow from the window
    ax.yaxis.set_label_position("right")
    if annotate:
        texts = {(r, c): format_value(out[r, c]) for r in range(ho) for c in range(wo)}
        size = _fontsize(list(texts.values()))
        for (r, c), text in texts.items():
            ax.text(c, r, text, ha="center", va="center", fontsize=size, zorder=5,
                    path_effects=_halo(_PALE_BLUES(norm(out[r, c]))))  # fmt: skip
    r, c = cell
    ax.add_patch(
        Rectangle(
            (c - 0.5, r - 0.5), 1, 1, facecolor="none", edgecolor=HIGHLIGHT,
            linewidth=3.5 if annotate else 2.2, zorder=4, gid="output-cell",
            path_effects=None if annotate else _OUTLINE,
        )
    )  # fmt: skip
    return image


def _norm(arr: np.ndarray) -> Normalize:
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return Normalize(lo, hi if hi > lo else lo + 1)


def _auto_annotate(arr: np.ndarray, canvas: _Canvas, annotate: bool | None) -> bool:
    if annotate is None:
        return arr.ndim == 2 and max(canvas.shape) <= TOY_LIMIT
    if annotate and arr.ndim == 3:
        raise ValueError("annotate=True writes numbers into cells and needs a 2-D matrix")
    return annotate


def _check_cell(cell: tuple[int, int], out_shape: tuple[int, int]) -> tuple[int, int]:
    i, j = as_cell(cell)
    if not (0 <= i < out_shape[0] and 0 <= j < out_shape[1]):
        raise ValueError(
            f"output cell {(i, j)} is outside the output of shape {out_shape[0]}×{out_shape[1]}; "
            f"allowed are rows 0..{out_shape[0] - 1} and columns 0..{out_shape[1] - 1}"
        )
    return i, j


def _settings_text(params: PoolParams, op: str) -> str:
    return f"{op} pooling: {params.text()}"


def _input_title(
    arr: np.ndarray, params: PoolParams, op: str, annotate: bool, canvas: _Canvas
) -> str:
    ph, pw = params.padding
    title = f"input {shape_text(arr)}"
    if ph or pw:
        pad = "−∞ border" if op == "max" else "zero border, counted in the mean"
        title += f" + padding {pair_text(params.padding)}" + (f" ({pad})" if annotate else "")
    if canvas.bottom >= arr.shape[0] + ph or canvas.right >= arr.shape[1] + pw:
        title += "\ndotted: past the edge, ignored (ceil_mode)"
    return title


# --------------------------------------------------------------------------- figures


def plot_matrix(
    x: Any,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    highlight: Sequence[tuple[int, int]] = (),
) -> Figure:
    """Draw a small matrix with its numbers in the cells, optionally highlighting some cells.

    The title defaults to the shape (``"4×4"``). Raises ``ValueError`` for more than 16 cells a
    side (the numbers would not be readable); use :func:`show_image_grid` for images.
    """
    arr = as_grid(x)
    if arr.ndim != 2 or max(arr.shape) > TOY_LIMIT:
        raise ValueError(
            f"plot_matrix draws 2-D matrices up to {TOY_LIMIT}×{TOY_LIMIT}, but got shape "
            f"{arr.shape}; use show_image_grid for images"
        )
    canvas = _Canvas(0, 0, arr.shape[0] - 1, arr.shape[1] - 1, *arr.shape, (0, 0))
    if ax is None:
        fig = new_figure(
            figsize=(CELL_INCHES * arr.shape[1] + 1.0, CELL_INCHES * arr.shape[0] + 1.0)
        )
        ax = fig.add_subplot()
    _draw_input(ax, arr, canvas, annotate=True, op="max", norm=_norm(arr))
    _style_grid_axes(ax, canvas, annotate=True)
    for r, c in highlight:
        ax.add_patch(
            Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="none", edgecolor=HIGHLIGHT,
                      linewidth=3.5, zorder=4, gid="highlight")
        )  # fmt: skip
    ax.set_title(shape_text(arr) if title is None else title)
    return ax.figure


def plot_window(
    x: Any,
    *,
    cell: tuple[int, int] = (0, 0),
    ax: Axes | None = None,
    op: str = "max",
    annotate: bool | None = None,
    title: str | None = None,
    **pool: Unpack[PoolArgs],
) -> Figure:
    """The input with the window of one output cell highlighted and its maximum marked.

    The window is a rectangle, or one square per tap when ``dilation > 1``. Padding is drawn as a
    grey border (``−∞`` cells for max pooling, ``0`` for average pooling, which counts them); parts
    of a ``ceil_mode`` window beyond the padding are dotted, PyTorch ignores them. For max pooling
    the winning cell (from PyTorch's ``return_indices``) is circled, or, in an RGB image, marked
    with one red, green and blue dot per channel, since each channel picks its own winner.
    ``pool``: kernel_size, stride, padding, dilation, ceil_mode, as ``F.max_pool2d`` takes them.
    Settings PyTorch refuses raise PyTorch's error.
    """
    arr = as_grid(x)
    result = pool_array(arr, op=op, **pool)
    params = PoolParams.of(**pool)
    cell = _check_cell(cell, result.shape)
    canvas = _canvas(arr, result.shape, params)
    annotate = _auto_annotate(arr, canvas, annotate)
    if ax is None:
        fig = _sized_figure(canvas, annotate, panels=1)
        ax = fig.add_subplot()
    rows, cols = params.window(cell)
    winners = argmax_cells(result.argmax, cell, arr.shape[:2], (rows, cols))
    image = _draw_input(ax, arr, canvas, annotate=annotate, op=op, norm=_norm(arr),
                        bold=set(winners[:1]) if annotate else set())  # fmt: skip
    _style_grid_axes(ax, canvas, annotate)
    _draw_window(ax, rows, cols, annotate)
    if winners:
        _draw_argmax(ax, winners, annotate)
    if arr.ndim == 2 and not annotate:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    default = (
        f"{_input_title(arr, params, op, annotate, canvas)}\n"
        f"window of output cell {cell}"
        + ("\n" if annotate else ": ")
        + f"kernel {pair_text(params.kernel_size)}, stride {pair_text(params.stride)}, "
        f"dilation {pair_text(params.dilation)}"
    )
    ax.set_title(default if title is None else title, fontsize=10)
    return ax.figure


def _sized_figure(canvas: _Canvas, annotate: bool, panels: int, out_canvas=None) -> Figure:
    if not annotate:
        return new_figure(figsize=(4.6 * panels + 0.6, 4.8), layout="constrained")
    rows, cols = canvas.shape
    width = max(4.2, CELL_INCHES * cols + 1.2)
    height = CELL_INCHES * rows + 2.5
    if out_canvas is not None:
        width += max(2.6, CELL_INCHES * out_canvas[1] + 1.2) + 0.8
    return new_figure(figsize=(width, height), layout="constrained")


def plot_pooling(
    x: Any,
    *,
    cell: tuple[int, int] = (0, 0),
    op: str = "max",
    axes: Sequence[Axes] | None = None,
    annotate: bool | None = None,
    link: bool = True,
    suptitle: str | None = None,
    **pool: Unpack[PoolArgs],
) -> Figure:
    """Input (with the window of ``cell``) beside the pooled output (with ``cell`` highlighted).

    Titles carry the shapes (``"input 4×4"``, ``"output 2×2"``); window and output cell share the
    highlight colour and an arrow links them (``link=False`` drops it). Matrices keep one colour
    scale on both sides, so a max-pooled number keeps its colour. Images are pooled per channel
    and both panels are drawn the same size, so the output's coarser pixels are visible.
    ``axes``: two existing axes to draw into. ``pool``: as for :func:`plot_window`.
    """
    arr = as_grid(x)
    result = pool_array(arr, op=op, **pool)
    params = PoolParams.of(**pool)
    cell = _check_cell(cell, result.shape)
    canvas = _canvas(arr, result.shape, params)
    annotate = _auto_annotate(arr, canvas, annotate)
    if axes is None:
        fig = _sized_figure(canvas, annotate, panels=2, out_canvas=result.shape)
        ratios = [canvas.shape[1], max(result.shape[1], 0.45 * canvas.shape[1])]
        ax_in, ax_out = fig.subplots(1, 2, width_ratios=ratios if annotate else [1, 1])
    else:
        ax_in, ax_out = axes
        fig = ax_in.figure
    rows, cols = params.window(cell)
    winners = argmax_cells(result.argmax, cell, arr.shape[:2], (rows, cols))
    norm = _norm(arr)
    image = _draw_input(ax_in, arr, canvas, annotate=annotate, op=op, norm=norm,
                        bold=set(winners[:1]) if annotate else set())  # fmt: skip
    _style_grid_axes(ax_in, canvas, annotate)
    _draw_window(ax_in, rows, cols, annotate)
    if winners:
        _draw_argmax(ax_in, winners, annotate)
    _draw_output(ax_out, result.output, cell, annotate=annotate, norm=norm,
                 uint8_scale=arr.dtype == np.uint8)  # fmt: skip
    if arr.ndim == 2 and not annotate:
        fig.colorbar(image, ax=[ax_in, ax_out], shrink=0.8, label="value (both panels)")
    ax_in.set_title(_input_title(arr, params, op, annotate, canvas), fontsize=10)
    out_title = f"output {shape_text(result.output)}"
    ax_out.set_title(out_title, fontsize=10)
    if link:
        _link(ax_in, ax_out, (cols[-1] + 0.5, (rows[0] + rows[-1]) / 2), (cell[1] - 0.5, cell[0]))
    fig.suptitle(
        _settings_text(params, op)
        if suptitle is None
        else suptitle,
        fontsize=11,
    )
    return fig


def _link(ax_in: Axes, ax_out: Axes, xy_in: tuple[float, float], xy_out: tuple[float, float]):
    """An arrow from the window to its output cell that passes *under* the numbers of both grids.

    One copy lives in each axes below the cell texts (zorder 4.5 < 5): the input's copy is
    unclipped and draws the part over the input and the gap; the output axes, drawn later, cover
    it with their own copy, clipped to the output axes.
    """
    for host, clip in ((ax_in, False), (ax_out, True)):
        arrow = ConnectionPatch(
            xyA=xy_in, coordsA=ax_in.transData, xyB=xy_out, coordsB=ax_out.transData,
            arrowstyle="-|>", mutation_scale=16, color=HIGHLIGHT, linewidth=2, zorder=4.5,
            gid="link",
        )  # fmt: skip
        host.add_artist(arrow)
        arrow.set_clip_on(clip)
        arrow.set_in_layout(False)  # else constrained layout shrinks the input to make room


def _cell_label(values: np.ndarray, winners: Sequence[bool], uint8_scale: bool) -> list[str]:
    """One line per channel: ``"R 201"`` (images) or the bare number (matrices)."""
    if values.size == 1:
        return [format_value(values.flat[0])]
    fmt = format_value if uint8_scale else (lambda v: f"{v:.2f}")
    return [f"{name} {fmt(v)}" for name, v in zip("RGB", values, strict=True)]


def _value_cell(ax: Axes, xy, values, face, winners, uint8_scale: bool, fontsize: float) -> None:
    """One enlarged cell: its colour, its value(s), winners in bold, argmax dots for images."""
    x, y = xy
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=face, edgecolor="white",
                           linewidth=2, zorder=1, gid="value-cell"))  # fmt: skip
    lines = _cell_label(np.atleast_1d(values), winners, uint8_scale)
    light = matplotlib.colors.to_rgb(face)
    ink = "black" if 0.299 * light[0] + 0.587 * light[1] + 0.114 * light[2] > 0.5 else "white"
    n = len(lines)
    for k, (line, won) in enumerate(zip(lines, winners, strict=True)):
        ax.text(
            x, y + (k - (n - 1) / 2) * 0.26, line, ha="center", va="center", fontsize=fontsize,
            fontweight="bold" if won else "normal", color=ARGMAX if won and n == 1 else ink,
            zorder=5, path_effects=_halo(face),
        )  # fmt: skip
    if n == 1 and winners[0]:
        ax.add_patch(Circle((x, y), 0.3, fill=False, edgecolor=ARGMAX, linewidth=2.2, zorder=6,
                            gid="argmax"))  # fmt: skip
    if n == 3 and any(winners):
        for won, colour, dx in zip(winners, CHANNEL_COLOURS, (-0.22, 0.0, 0.22), strict=True):
            if won:
                ax.plot(x + dx, y - 0.4, "o", ms=6, mfc=colour, mec="black", mew=0.8, zorder=6,
                        gid="argmax")  # fmt: skip


def _window_equation(arr, canvas: _Canvas, rows, cols, op: str, result: float) -> str:
    """``"max(1, 3, 4, 6) = 6"`` or ``"(0 + 0 + 3 + 2) / 4 = 1.25"`` for one window of a matrix.

    Padding enters as −∞ (max) or 0 (avg, PyTorch's ``count_include_pad=True``); cells past the
    padding (``ceil_mode``) are left out, and so are they from the divisor, as in PyTorch.
    """
    terms = []
    for r, c in itertools.product(rows, cols):
        kind = canvas.kind(int(r), int(c))
        if kind == "input":
            terms.append(format_value(arr[r, c]))
        elif kind == "padding":
            terms.append("−∞" if op == "max" else "0")
    if op == "max":
        return f"max({', '.join(terms)}) = {format_value(result)}"
    return f"({' + '.join(terms)}) / {len(terms)} = {format_value(result)}"


def plot_window_values(
    x: Any, *, cell: tuple[int, int] = (0, 0), op: str = "max", **pool: Unpack[PoolArgs]
) -> Figure:
    """The window of one output cell, enlarged, with every value written out, beside that cell.

    Only the window's taps are drawn (a dilated window closes up), ticks give their input
    coordinates. For an RGB image each pixel shows its R, G and B values; each channel's maximum
    is bold and dotted in its colour, which shows that max pooling takes a channel's maximum
    independently, so the output pixel may be a colour that no input pixel has.

    Long (about 95 lines) because it is one figure drawn in reading order; its pieces are used nowhere else.
    """
    arr = as_grid(x)
    result = pool_array(arr, op=op, **pool)
    params = PoolParams.of(**pool)
    cell = _check_cell(cell, result.shape)
    rows, cols = params.window(cell)
    canvas = _canvas(arr, result.shape, params)
    h, w = arr.shape[:2]
    rgb = arr.ndim == 3
    uint8_scale = arr.dtype == np.uint8
    channels = 3 if rgb else 1
    winners = argmax_cells(result.argmax, cell, (h, w), (rows, cols))
    norm = _norm(arr)
    cell_in = 1.05 if rgb else 0.6
    fontsize = 9.5 if rgb else 12
    fig = new_figure(
        figsize=(max(5.5, cell_in * (len(cols) + 1) + 2.6), cell_in * len(rows) + 2.1),
        layout="constrained",
    )
    ax_in, ax_out = fig.subplots(1, 2, width_ratios=[len(cols), 1])

    def face_of(values: np.ndarray):
        if rgb:
            return tuple(_display(values, uint8_scale))
        return _PALE_BLUES(norm(values))

    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            kind = canvas.kind(int(r), int(c))
            if kind == "input":
                values = arr[r, c]
                won = [(int(r), int(c)) == wc for wc in winners] or [False] * channels
                _value_cell(ax_in, (j, i), values, face_of(values), won, uint8_scale, fontsize)
            else:
                text = ("−∞" if op == "max" else "0") if kind == "padding" else "ignored"
                ax_in.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        facecolor=PADDING_FACE,
                        edgecolor="white",
                        linewidth=2,
                        gid="value-cell",
                    )
                )
                ax_in.text(j, i, text, ha="center", va="center", fontsize=fontsize, color="#555555")
    out = result.output[cell]
    _value_cell(ax_out, (0, 0), out, face_of(out), [False] * channels, uint8_scale, fontsize)
    ax_out.add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=3.5,
                               zorder=4, gid="output-cell"))  # fmt: skip
    ax_in.add_patch(Rectangle((-0.5, -0.5), len(cols), len(rows), fill=False, edgecolor=HIGHLIGHT,
                              linewidth=3.5, zorder=4, gid="window"))  # fmt: skip
    for ax, (nr, nc), rlabels, clabels in (
        (ax_in, (len(rows), len(cols)), rows, cols),
        (ax_out, (1, 1), [cell[0]], [cell[1]]),
    ):
        ax.set_xlim(-0.5, nc - 0.5)
        ax.set_ylim(nr - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_xticks(range(nc), [str(v) for v in clabels])
        ax.set_yticks(range(nr), [str(v) for v in rlabels])
        ax.tick_params(length=0, labelsize=8)
        for spine in ax.spines.values():
            spine.set_visible(False)
    ax_in.set_xlabel("input column")
    ax_in.set_ylabel("input row")
    ax_out.set_xticks([])
    ax_out.set_yticks([])
    ax_in.set_title(f"window of output cell {cell} ({len(rows)}×{len(cols)} taps)", fontsize=10)
    ax_out.set_title(f"{op} → output\ncell {cell}", fontsize=10)
    _link(ax_in, ax_out, (len(cols) - 0.5, (len(rows) - 1) / 2), (-0.5, 0))
    if not rgb:
        fig.supxlabel(_window_equation(arr, canvas, rows, cols, op, float(out)), fontsize=11)
    note = "\neach channel takes its own maximum" if rgb and op == "max" else ""
    if rgb and op == "max":
        handles = [
            Line2D([], [], marker="o", linestyle="", ms=7, mfc=colour, mec="black", mew=0.8,
                   label=f"winner of the {name} channel")
            for name, colour in zip(("red", "green", "blue"), CHANNEL_COLOURS, strict=True)
        ]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9,
                   frameon=False)  # fmt: skip
    fig.suptitle(_settings_text(params, op) + note,
                 fontsize=11)  # fmt: skip
    return fig


def show_image_grid(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    *,
    size: float = 2.2,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> Figure:
    """Images side by side, ``ncols`` per row, each with its title (default: its shape).

    Every image keeps its own pixel grid (no smoothing), so pooled images look as coarse as
    they are. Images are ``(H, W)`` or ``(H, W, 3)`` (uint8 0..255 or float 0..1); 2-D arrays
    use ``cmap`` over their own value range. One axes per image, none spare.
    """
    if len(images) == 0:
        raise ValueError("show_image_grid needs at least one image, but got none")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles; give one per image")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, but got {ncols}")
    arrays = [as_grid(im) for im in images]
    ncols = min(ncols, len(arrays))
    nrows = -(-len(arrays) // ncols)
    fig = new_figure(figsize=(size * ncols, size * nrows + 0.5 * nrows), layout="constrained")
    for i, arr in enumerate(arrays):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if arr.ndim == 3:
            ax.imshow(_display(arr, arr.dtype == np.uint8), interpolation="nearest")
        else:
            ax.imshow(arr, cmap=cmap, norm=_norm(arr), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(shape_text(arr) if titles is None else titles[i], fontsize=10)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


# --------------------------------------------------------------------------- convolution-arithmetic
# Figures in the style of Dumoulin & Visin's "A guide to convolution arithmetic": the input as a
# grid of squares, padding as dashed squares, each window outlined in its own colour, the output
# grid beside it in the same colours. The geometry comes from :func:`arithmetic` (tested against
# PyTorch); the drawing only draws it.

WINDOW_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#17becf", "#bcbd22")  # fmt: skip
UNCOVERED_FACE = "#f4b6b6"
INPUT_FACE = "#cfe2f3"


def _square(ax: Axes, r: float, c: float, **kw) -> None:
    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, **kw))


def _draw_arithmetic(
    ax_in: Axes,
    ax_out: Axes | None,
    geo: Arithmetic,
    values: np.ndarray | None,
    out_values: np.ndarray | None,
    show: Sequence[tuple[int, int]],
    filled: Sequence[tuple[int, int]],
    rest_values: bool = False,
) -> None:
    """Long (about 70 lines) because it draws one conv-arithmetic panel pair in reading order."""
    h, w = geo.in_shape
    ph, pw = geo.padding
    taps = [t for cell in show for t in geo.windows[cell]]
    top = min([-ph] + [r for r, _ in taps])
    left = min([-pw] + [c for _, c in taps])
    bottom = max([h - 1 + ph] + [r for r, _ in taps])
    right = max([w - 1 + pw] + [c for _, c in taps])
    fs = 11 if max(bottom - top, right - left) < 8 else 9
    for r, c in itertools.product(range(top, bottom + 1), range(left, right + 1)):
        inside = 0 <= r < h and 0 <= c < w
        padded = -ph <= r < h + ph and -pw <= c < w + pw
        if inside:
            face = UNCOVERED_FACE if (r, c) in geo.uncovered else INPUT_FACE
            _square(ax_in, r, c, facecolor=face, edgecolor="#5b7fa6", linewidth=1, zorder=1,
                    hatch="//" if (r, c) in geo.uncovered else None, gid="input")  # fmt: skip
            if values is not None:
                ax_in.text(c, r, format_value(values[r, c]), ha="center", va="center",
                           fontsize=fs, zorder=5)  # fmt: skip
        elif padded:
            _square(ax_in, r, c, facecolor="white", edgecolor="#7f7f7f", linewidth=1,
                    linestyle="--", zorder=1, gid="padding")  # fmt: skip
            ax_in.text(c, r, "−∞", ha="center", va="center", fontsize=fs - 1, color="#555555",
                       zorder=5)  # fmt: skip
        elif (r, c) in taps:
            _square(ax_in, r, c, facecolor="white", edgecolor="#b0b0b0", linewidth=1,
                    linestyle=":", zorder=1, gid="overhang")  # fmt: skip
    for k, cell in enumerate(show):
        colour = WINDOW_COLOURS[(cell[0] * geo.out_shape[1] + cell[1]) % len(WINDOW_COLOURS)]
        cell_taps = geo.windows[cell]
        rows = sorted({r for r, _ in cell_taps})
        cols = sorted({c for _, c in cell_taps})
        dashed = cell in geo.extra
        inset = 0.06 + 0.05 * (k % 2)  # neighbouring outlines stay apart
        dilated = len(rows) > 1 and rows[1] - rows[0] > 1 or len(cols) > 1 and cols[1] - cols[0] > 1
        boxes = ([(r, c, 1, 1) for r, c in cell_taps] if dilated
                 else [(rows[0], cols[0], len(rows), len(cols))])  # fmt: skip
        for r, c, nr, nc in boxes:
            ax_in.add_patch(Rectangle(
                (c - 0.5 + inset, r - 0.5 + inset), nc - 2 * inset, nr - 2 * inset, fill=False,
                edgecolor=colour, linewidth=3, linestyle="--" if dashed else "-", zorder=4,
                gid="window-extra" if dashed else "window"))  # fmt: skip
    ax_in.set_xlim(left - 0.6, right + 0.6)
    ax_in.set_ylim(bottom + 0.6, top - 0.6)
    if ax_out is None:
        return
    ho, wo = geo.out_shape
    for i, j in itertools.product(range(ho), range(wo)):
        colour = WINDOW_COLOURS[(i * wo + j) % len(WINDOW_COLOURS)]
        on = (i, j) in filled
        _square(ax_out, i, j, facecolor=colour if on else "white", alpha=1.0,
                edgecolor=colour if on else "#9a9a9a", linewidth=2 if on else 1,
                linestyle="--" if (i, j) in geo.extra else "-", zorder=1, gid="output")  # fmt: skip
        if out_values is not None and (on or rest_values):
            ax_out.text(j, i, format_value(out_values[i, j]), ha="center", va="center",
                        fontsize=fs, color="white" if on else "#555555",
                        fontweight="bold" if on else "normal", zorder=5)  # fmt: skip
    ax_out.set_xlim(-0.6, max(wo, 2) - 0.4)
    ax_out.set_ylim(max(ho, 2) - 0.4, -0.6)


def _bare(ax: Axes) -> None:
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_arithmetic(
    x: int | tuple[int, int] | Any,
    *,
    windows: Sequence[tuple[int, int]] | None = None,
    axes: Sequence[Axes] | None = None,
    title: str | None = None,
    **pool: Unpack[PoolArgs],
) -> Figure:
    """A pooling call drawn like the convolution-arithmetic guide: input squares (blue), padding
    (dashed, −∞), the windows of ``windows`` (default: every output cell) each in its colour,
    dashed when only ``ceil_mode`` creates it, input cells no window covers hatched red, and the
    output grid in the windows' colours.

    ``x``: a size (``5`` or ``(5, 6)``), or a 2-D matrix whose numbers are written in the cells
    (then the output cells show PyTorch's max-pooled values). ``pool``: as for :func:`plot_window`.
    """
    values = None
    if isinstance(x, int) or (isinstance(x, tuple) and all(isinstance(v, int) for v in x)):
        shape = x
    else:
        values = as_grid(x)
        if values.ndim != 2:
            raise ValueError(f"plot_arithmetic draws a 2-D matrix, but got shape {values.shape}")
        shape = values.shape
    geo = arithmetic(shape, **pool)
    params = PoolParams.of(**pool)
    out_values = None
    if values is not None:
        out_values = pool_array(values, **pool).output
    show = list(geo.windows) if windows is None else [as_cell(c) for c in windows]
    for cell in show:
        _check_cell(cell, geo.out_shape)
    if axes is None:
        fig = new_figure(figsize=(6.4, 3.6))
        ax_in, ax_out = fig.subplots(1, 2, width_ratios=[1.6, 1])
    else:
        ax_in, ax_out = axes
        fig = ax_in.figure
    _draw_arithmetic(ax_in, ax_out, geo, values, out_values, show, show, rest_values=True)
    for ax in (ax_in, ax_out):
        _bare(ax)
    h, w = geo.in_shape
    notes = []
    if any(geo.padding):
        notes.append(f"+ padding {pair_text(params.padding)} (−∞: it never wins)")
    if geo.uncovered:
        notes.append(f"hatched: {len(geo.uncovered)} cells no window covers")
    if geo.extra:
        notes.append("dashed: windows only ceil_mode makes")
    ax_in.set_title(f"input {h}×{w}" + ("".join(f"\n{n}" for n in notes)), fontsize=10)
    coloured = "" if len(show) == len(geo.windows) else "\ncoloured: the windows drawn"
    ax_out.set_title(f"output {geo.out_shape[0]}×{geo.out_shape[1]}{coloured}", fontsize=10)
    fig.suptitle(_settings_text(params, "max") if title is None else title, fontsize=11)
    return fig


def plot_floor_vs_ceil(size: int = 5, kernel_size: int = 2, stride: int | None = 2) -> Figure:
    """The same input pooled with the default floor (the last row and column are never looked
    at, hatched) and with ``ceil_mode=True`` (an extra, partial window, dashed)."""
    fig = new_figure(figsize=(10.5, 4.2))
    sub = fig.subfigures(1, 2, wspace=0.06)
    for panel, ceil in zip(sub, (False, True), strict=True):
        axes = panel.subplots(1, 2, width_ratios=[1.6, 1])
        pool: PoolArgs = {"kernel_size": kernel_size, "stride": stride, "ceil_mode": ceil}
        plot_arithmetic(size, axes=axes, title="", **pool)
        geo = arithmetic(size, **pool)
        panel.suptitle(f"ceil_mode={ceil}: {size}×{size} → "
                       f"{geo.out_shape[0]}×{geo.out_shape[1]}", fontsize=11)  # fmt: skip
    fig.suptitle(f"kernel {kernel_size}, stride {stride}: floor drops what ceil_mode keeps",
                 fontsize=12)  # fmt: skip
    return fig


def window_animation(
    x: Any, *, dpi: int = 60, interval: int = 700, **pool: Unpack[PoolArgs]
) -> animation.FuncAnimation:
    """The window walking over the input, one frame per output cell, filling the output as it
    goes (the numbers are PyTorch's max-pooled values). Render it offline with
    ``IPython.display.HTML(anim.to_jshtml())``: the frames are embedded PNGs, so keep the input
    small (one frame per output cell) and ``dpi`` low."""
    values = as_grid(x)
    if values.ndim != 2:
        raise ValueError(f"window_animation draws a 2-D matrix, but got shape {values.shape}")
    geo = arithmetic(values.shape, **pool)
    out_values = pool_array(values, **pool).output
    order = list(geo.windows)
    if len(order) > 36:
        raise ValueError(f"{len(order)} output cells would make {len(order)} frames; "
                         "animate an input with at most 36 output cells")  # fmt: skip
    fig = new_figure(figsize=(5.6, 3.2))
    fig.set_dpi(dpi)
    ax_in, ax_out = fig.subplots(1, 2, width_ratios=[1.6, 1])
    settings = _settings_text(PoolParams.of(**pool), "max")

    def frame(k: int):
        for ax in (ax_in, ax_out):
            ax.clear()
        cell = order[k]
        _draw_arithmetic(ax_in, ax_out, geo, values, out_values, [cell], order[: k + 1])
        for ax in (ax_in, ax_out):
            _bare(ax)
        taps = [values[r, c] for r, c in geo.windows[cell]
                if 0 <= r < values.shape[0] and 0 <= c < values.shape[1]]  # fmt: skip
        ax_in.set_title(f"window of output {cell}: max of {len(taps)} values", fontsize=10)
        ax_out.set_title(f"output {geo.out_shape[0]}×{geo.out_shape[1]}: "
                         f"{format_value(out_values[cell])}", fontsize=10)  # fmt: skip
        fig.suptitle(settings, fontsize=10)
        return []

    return animation.FuncAnimation(fig, frame, frames=len(order), interval=interval, blit=False)


_ICONS = {  # font-awesome icons of matplotlib's player, as text: the page needs no CDN
    "fa fa-minus": "−", "fa fa-plus": "+", "fa fa-fast-backward": "⏮", "fa fa-step-backward": "◀|",
    "fa fa-play fa-flip-horizontal": "◀", "fa fa-pause": "⏸", "fa fa-play": "▶",
    "fa fa-step-forward": "|▶", "fa fa-fast-forward": "⏭",
}  # fmt: skip
_CDN_LINK = re.compile(r"<link[^>]*href=\"https?://[^\"]*\"[^>]*>\s*")


def animation_html(anim: animation.FuncAnimation) -> str:
    """``anim.to_jshtml()`` made fully offline: the frames are embedded PNGs already, and the
    player's icon font (loaded from a CDN by matplotlib) is replaced by plain text symbols, so
    it plays on a static page or GitHub's HTML without a network. Display it with
    ``IPython.display.HTML(...)``."""
    html = _CDN_LINK.sub("", anim.to_jshtml())
    for cls, text in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', text)
    return html
