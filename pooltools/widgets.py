"""An interactive pooling explorer: sliders in, PyTorch's answer and the shape arithmetic out.

All logic lives in pure functions that the tests check against PyTorch (:func:`explore`,
:func:`format_shape_formula`, and the geometry in :mod:`pooltools.shapes`); :func:`render` draws a
state, and :func:`pooling_explorer` is a thin ipywidgets layer over them. When PyTorch refuses a
setting, the explorer shows PyTorch's own message, obtained by actually calling it.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from pooltools import viz
from pooltools.shapes import (
    PoolArgs,
    PoolParams,
    argmax_cells,
    as_cell,
    never_covered,
    pool_output_size,
    uncovered,
)

__all__ = [
    "ExplorerState",
    "format_shape_formula",
    "explore",
    "render",
    "pooling_explorer",
]



# --------------------------------------------------------------------------- shape arithmetic


def _num(v: int) -> str:
    """An int for a formula: typographic minus, negatives in brackets."""
    return f"(−{-v})" if v < 0 else str(v)


def format_shape_formula(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
    axis: str = "H",
) -> str:
    """PyTorch's output-size formula for one axis, with the numbers filled in and evaluated.

    ``floor((size + 2·padding − dilation·(kernel−1) − 1) / stride + 1)``, with ``ceil`` under
    ``ceil_mode``, where PyTorch then drops a last window that would start inside the right
    padding (written as a trailing ``− 1``). The value is printed even when it is below 1, the
    case PyTorch refuses with "Output size is too small".

    >>> format_shape_formula(25, 2)
    'H_out = floor((25 + 2·0 − 1·(2−1) − 1) / 2 + 1) = 12'
    """
    params = PoolParams.of(kernel_size, stride, padding, dilation, ceil_mode, check=False)
    kernel_size, stride, padding, dilation = params.axis(0)  # prints refused settings too
    rounding = "ceil" if ceil_mode else "floor"
    expr = (
        f"{rounding}(({size} + 2·{_num(padding)} − {_num(dilation)}·({_num(kernel_size)}−1) − 1)"
        f" / {_num(stride)} + 1)"
    )
    if stride == 0:
        return f"{axis}_out = {expr} = undefined (division by a zero stride)"
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
        expr += " − 1"
    return f"{axis}_out = {expr} = {out}"


# --------------------------------------------------------------------------- the state


@dataclass(frozen=True)
class ExplorerState:
    """Everything the explorer shows for one setting; ``output is None`` when PyTorch refused it.

    ``stride`` is the effective stride (the kernel size when it was given as ``None``).
    ``window_cells``: the ``(row, col)`` input cells, in unpadded coordinates (negative or past the
    edge inside the padding), that the output cell ``cell`` pools over. ``argmax``: per channel,
    the input cell PyTorch's ``return_indices`` says won (``None`` for average pooling).
    ``error``: PyTorch's own error message, or ``None``.
    """

    input: np.ndarray
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    op: str
    cell: tuple[int, int]
    output: np.ndarray | None
    out_shape: tuple[int, int] | None
    formula_h: str
    formula_w: str
    window_cells: list[tuple[int, int]] = field(default_factory=list)
    argmax: list[tuple[int, int]] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def shape_text(self) -> str:
        """``"output shape: 12 × 12"`` (``"× 3"`` added for an image), or why there is none."""
        if self.out_shape is None:
            return "output shape: none (PyTorch refuses these settings)"
        h, w = self.out_shape
        channels = f" × {self.input.shape[2]}" if self.input.ndim == 3 else ""
        return f"output shape: {h} × {w}{channels}"


def _listing(items: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _coverage_warnings(h: int, w: int, params: PoolParams) -> list[str]:
    rows = never_covered(h, *params.axis(0), params.ceil_mode)
    cols = never_covered(w, *params.axis(1), params.ceil_mode)
    tail_r = uncovered(h, *params.axis(0), params.ceil_mode)
    tail_c = uncovered(w, *params.axis(1), params.ceil_mode)
    found = []
    parts = [f"{n} {what}(s)" for n, what in ((tail_r, "row"), (tail_c, "column")) if n]
    if parts:
        found.append(f"the last {' and '.join(parts)} of the input are never covered by any window")
    gap_r, gap_c = rows[: len(rows) - tail_r], cols[: len(cols) - tail_c]
    parts = [f"{what}(s) {_listing(g)}" for g, what in ((gap_r, "row"), (gap_c, "column")) if g]
    if parts:
        found.append(
            f"input {' and '.join(parts)} fall in gaps between window cells and never reach the "
            f"output (stride larger than the window, or dilation)"
        )
    return found


def _padding_only_cells(h: int, w: int, out_shape: tuple[int, int], params: PoolParams) -> int:
    """How many output cells pool over padding alone (possible with dilation)."""
    blind = []
    for axis, (n_out, size) in enumerate(zip(out_shape, (h, w), strict=True)):
        taps = [params.window((i, i))[axis] for i in range(n_out)]  # this axis's taps only
        blind.append(sum(not any(0 <= t < size for t in row) for row in taps))
    (ho, wo), (bh, bw) = out_shape, blind
    return ho * wo - (ho - bh) * (wo - bw)


def _ceil_notes(h: int, w: int, params: PoolParams) -> list[str]:
    hangs, dropped = [], []
    for axis, size, (kk, ss, pp, dd) in (("H", h, params.axis(0)), ("W", w, params.axis(1))):
        try:
            floor_n = pool_output_size(size, kk, ss, pp, dd, False)
        except ValueError:  # floor mode refuses what ceil mode accepts
            floor_n = 0
        ceil_n = pool_output_size(size, kk, ss, pp, dd, True)
        span = size + 2 * pp - dd * (kk - 1) - 1
        if ceil_n > floor_n:
            hangs.append(axis)
        elif -(-span // ss) + 1 > ceil_n:
            dropped.append(axis)
    notes = []
    if hangs:
        notes.append(
            f"ceil_mode adds a last window along {' and '.join(hangs)} that hangs past the padded "
            f"input; PyTorch pools only the part of it that lies inside"
        )
    if dropped:
        notes.append(
            f"ceil_mode changes nothing along {' and '.join(dropped)}: its extra window would "
            f"start inside the right padding, and PyTorch drops such a window"
        )
    return notes


def explore(
    x: Any, *, cell: tuple[int, int] = (0, 0), op: str = "max", **pool: Unpack[PoolArgs]
) -> ExplorerState:
    """Pool ``x`` with PyTorch and collect what a learner should see about this setting.

    ``x``: a 2-D matrix or an ``(H, W, 3)`` image. ``cell`` is clamped into the output. ``pool``:
    kernel_size (default 2), stride, padding, dilation, ceil_mode, as ``F.max_pool2d`` takes them.
    Settings PyTorch refuses give a state with ``output=None`` and ``error`` set to PyTorch's
    message.
    """
    arr = viz.as_grid(x)
    h, w = arr.shape[:2]
    pool = {"kernel_size": 2, **pool}  # type: ignore[typeddict-item]
    params = PoolParams.of(**pool, check=False)  # PyTorch below judges the setting
    k, s, p, d = params.kernel_size, params.stride, params.padding, params.dilation
    ceil_mode = params.ceil_mode
    base = dict(
        input=arr, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode, op=op,
        formula_h=format_shape_formula(h, *params.axis(0), ceil_mode, "H"),
        formula_w=format_shape_formula(w, *params.axis(1), ceil_mode, "W"),
    )  # fmt: skip
    try:
        result = viz.pool_array(arr, op=op, **pool)
    except (RuntimeError, TypeError, ValueError) as error:
        return ExplorerState(**base, cell=(0, 0), output=None, out_shape=None, error=str(error))
    ho, wo = result.shape
    i, j = as_cell(cell)
    i, j = min(max(i, 0), ho - 1), min(max(j, 0), wo - 1)
    rows, cols = params.window((i, j))
    argmax = None
    if result.argmax is not None:
        argmax = argmax_cells(result.argmax, (i, j), (h, w), (rows, cols))
    warnings = _coverage_warnings(h, w, params)
    blind = _padding_only_cells(h, w, (ho, wo), params)
    if blind:
        warnings.append(
            f"{blind} output cell(s) have windows that lie wholly in the padding and see no "
            f"input: they come out as " + ("−∞" if op == "max" else "0")
        )
    if ceil_mode:
        warnings += _ceil_notes(h, w, params)
    if op == "avg" and max(p) > 0:
        warnings.append(
            "avg pooling counts the zero padding in the mean (count_include_pad=True), so "
            "outputs at the border are pulled toward 0"
        )
    return ExplorerState(
        **base,
        cell=(i, j),
        output=result.output,
        out_shape=(ho, wo),
        window_cells=[(int(r), int(c)) for r in rows for c in cols],
        argmax=argmax,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- drawing


def render(state: ExplorerState, *, show_text: bool = True) -> Figure:
    """Draw a state: input with the window beside the output, or the input and PyTorch's refusal.

    ``show_text`` writes the two shape formulas and any warnings under the figure (the widget
    turns it off because it shows them as HTML).
    """
    if state.error is not None:
        fig = viz.new_figure(figsize=(6.0, 5.0))
        ax = fig.add_subplot()
        arr = state.input
        if arr.ndim == 2 and max(arr.shape) <= viz.TOY_LIMIT:
            viz.plot_matrix(arr, ax=ax, title=f"input {viz.shape_text(arr)}")
        else:
            shown = viz.as_grid(arr).astype(np.float64) / (255.0 if arr.dtype == np.uint8 else 1)
            ax.imshow(np.clip(shown, 0, 1) if arr.ndim == 3 else shown, cmap="gray",
                      interpolation="nearest")  # fmt: skip
            ax.set_title(f"input {viz.shape_text(arr)}")
        message = "\n".join(textwrap.wrap(state.error, 70))
        fig.supxlabel(f"PyTorch refuses these settings:\n{message}", color="#b00000", fontsize=10)
        return fig
    fig = viz.plot_pooling(
        state.input, cell=state.cell, op=state.op, kernel_size=state.kernel_size,
        stride=state.stride, padding=state.padding, dilation=state.dilation,
        ceil_mode=state.ceil_mode,
    )  # fmt: skip
    if show_text:
        width = int(fig.get_figwidth() * 13)  # characters that fit at fontsize 9
        lines = [state.formula_h, state.formula_w]
        for warning in state.warnings:
            lines += textwrap.wrap(f"⚠ {warning}", width, subsequent_indent="   ")
        fig.supxlabel("\n".join(lines), fontsize=9)
    return fig


def _details_html(state: ExplorerState) -> str:
    parts = [f"<code>{html.escape(state.formula_h)}</code><br><code>"
             f"{html.escape(state.formula_w)}</code>"]  # fmt: skip
    if state.error is not None:
        parts.append(
            "<div style='color:#b00000'><b>PyTorch refuses these settings:</b> "
            f"<code>{html.escape(state.error)}</code></div>"
        )
    for warning in state.warnings:
        parts.append(f"<div style='color:#a05a00'>⚠ {html.escape(warning)}</div>")
    return "".join(parts)


# --------------------------------------------------------------------------- the widget


class PoolingExplorer(widgets.VBox):
    """The explorer box: ``controls`` (dict of widgets by name), ``shape_label``, ``details``,
    ``output`` (the figure), and ``state``, the :class:`ExplorerState` now shown."""

    def __init__(self, x: Any, kernel_size: int = 2, *, draw: bool = True) -> None:
        self.input = viz.as_grid(x)
        h, w = self.input.shape[:2]
        # One past the input, so that a learner can meet PyTorch's "output size is too small".
        kernel_max = max(2, min(8, max(h, w) + 1))
        style = {"description_width": "90px"}
        c = {
            "kernel_size": widgets.IntSlider(min(kernel_size, kernel_max), 1, kernel_max,
                                             description="kernel_size", style=style),
            "stride": widgets.IntSlider(min(kernel_size, kernel_max), 1, kernel_max,
                                        description="stride", style=style),
            "stride_is_kernel": widgets.Checkbox(True, description="stride = kernel_size",
                                                 indent=False),
            "padding": widgets.IntSlider(0, 0, 4, description="padding", style=style),
            "dilation": widgets.IntSlider(1, 1, 4, description="dilation", style=style),
            "ceil_mode": widgets.Checkbox(False, description="ceil_mode", indent=False),
            "op": widgets.ToggleButtons(options=["max", "avg"], value="max", description="op",
                                        style=style),
            "row": widgets.IntSlider(0, 0, 1, description="output row", style=style),
            "col": widgets.IntSlider(0, 0, 1, description="output col", style=style),
        }  # fmt: skip
        self.controls = c
        self.shape_label = widgets.HTML()
        self.details = widgets.HTML()
        self.output = widgets.Output()
        self.draw = draw
        self.png: bytes | None = None
        self.state: ExplorerState | None = None
        self._busy = False
        left = widgets.VBox([c["kernel_size"], c["stride"], c["stride_is_kernel"], c["padding"],
                             c["dilation"]])  # fmt: skip
        right = widgets.VBox([c["op"], c["ceil_mode"], c["row"], c["col"]])
        super().__init__([widgets.HBox([left, right]), self.shape_label, self.details,
                          self.output])  # fmt: skip
        for name, control in c.items():
            control.observe(lambda change, name=name: self._changed(name), names="value")
        self.update()

    def _changed(self, name: str) -> None:
        if self._busy:
            return
        c = self.controls
        self._busy = True
        try:
            if name == "kernel_size" and c["stride_is_kernel"].value:
                c["stride"].value = c["kernel_size"].value
            elif name == "stride_is_kernel" and c["stride_is_kernel"].value:
                c["stride"].value = c["kernel_size"].value
            elif name == "stride" and c["stride"].value != c["kernel_size"].value:
                c["stride_is_kernel"].value = False  # the learner chose a stride of their own
        finally:
            self._busy = False
        self.update()

    def update(self) -> ExplorerState:
        """Recompute the state from the controls and refresh label, details and figure."""
        c = self.controls
        linked = c["stride_is_kernel"].value and c["stride"].value == c["kernel_size"].value
        state = explore(
            self.input, cell=(c["row"].value, c["col"].value), op=c["op"].value,
            kernel_size=c["kernel_size"].value, stride=None if linked else c["stride"].value,
            padding=c["padding"].value, dilation=c["dilation"].value,
            ceil_mode=c["ceil_mode"].value,
        )  # fmt: skip
        self.state = state
        self._busy = True
        try:
            for name, n in zip(("row", "col"), state.out_shape or (1, 1), strict=True):
                c[name].max = max(n - 1, 0)
                c[name].disabled = state.out_shape is None
            if state.out_shape is not None:
                c["row"].value, c["col"].value = state.cell
        finally:
            self._busy = False
        self.shape_label.value = f"<b>{html.escape(state.shape_text)}</b>"
        self.details.value = _details_html(state)
        if self.draw:
            self._draw(state)
        return state

    def _draw(self, state: ExplorerState) -> None:
        buffer = io.BytesIO()
        render(state, show_text=False).savefig(buffer, format="png", dpi=90)
        self.png = buffer.getvalue()
        # Setting the Output's outputs directly (rather than `with output: display(...)`)
        # needs no running kernel, so the explorer also builds and updates in a plain test.
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(self.png).decode("ascii"),
                    "text/plain": f"<pooling figure: {state.shape_text}>",
                },
                "metadata": {},
            },
        )


def pooling_explorer(x: Any, kernel_size: int = 2, *, draw: bool = True) -> PoolingExplorer:
    """Build the interactive explorer for a 2-D matrix or an ``(H, W, 3)`` image.

    Sliders for kernel size, stride (follows the kernel size while "stride = kernel_size" is
    ticked, as PyTorch's ``stride=None`` does), padding, dilation, the output cell, plus
    ``ceil_mode`` and max/avg. Shows the figure, ``output shape: H × W``, both shape formulas
    with the current numbers, warnings about input that no window covers, and PyTorch's own
    error text for settings it refuses. Works without a display; ``draw=False`` skips figures.
    """
    return PoolingExplorer(x, kernel_size, draw=draw)
