"""Output hygiene of every committed notebook: what a reader sees must not show the maintainers'
machine or a broken run.

Fails on, naming the notebook, the cell and the offending text:
- an absolute path of the machine (``/work/``, ``/root/``, ``/home/``, ``/tmp/``, ``/Users/``, the
  checkout's own path or the home folder);
- a raw environment dict (``{'torch': ..., 'platform': ...}``, ``environ({...})``);
- a raw traceback: an ``error`` output, or ``Traceback (most recent call last)`` in any text;
- a frozen progress bar: a tqdm line whose last state is below 100 % (``0%|``), or a saved
  progress widget whose value is below its max;
- a setup cell (tagged ``setup``) that is not collapsed (``jupyter.source_hidden``) or does not
  open with a one-line comment a learner can read.

The scanner is tested on small synthetic notebooks that must fail, so a silent scanner cannot pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TEXT_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/javascript")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}

_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\\n]+")
_ABSOLUTE = re.compile(r"(?<![\w.~$/:-])/(?:work|root|home|tmp|Users)/[^\s'\"<>)]*")
_ENV_DICT = re.compile(
    r"\{\s*['\"](?:torch|python|platform|machine|processor|cpu_count|PATH|HOME)['\"]\s*:"
    r"|environ\(\{"
)
_TRACEBACK = "Traceback (most recent call last)"
_TQDM = re.compile(r"(?<![\d.])(\d{1,3})%\|")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _output_texts(output) -> list[str]:
    """Every text a reader can see in one output (images and widget views excluded)."""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return ["".join(text) if isinstance(text, list) else text]
    if output.get("output_type") == "error":
        return [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    texts = []
    for mime, value in output.get("data", {}).items():
        if mime in TEXT_TYPES:
            texts.append("".join(value) if isinstance(value, list) else str(value))
    return texts


def _frozen_tqdm(text: str) -> str | None:
    """The last state of a tqdm line that stopped below 100 %, or None."""
    for line in text.split("\n"):
        last = line.split("\r")[-1]
        m = _TQDM.search(last)
        if m and int(m.group(1)) < 100:
            return last.strip()
    return None


def _widget_models(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _frozen_widgets(model_id: str, models: dict, seen: set | None = None) -> list[str]:
    """Progress widgets below their max inside the widget ``model_id`` (children followed)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in models:
        return []
    seen.add(model_id)
    model = models[model_id]
    state = model.get("state", {})
    found = []
    if model.get("model_name") in PROGRESS_MODELS:
        value, top = state.get("value", 0), state.get("max", 100)
        if value < top:
            found.append(f"progress widget at {value}/{top}")
    for child in state.get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += _frozen_widgets(child.removeprefix("IPY_MODEL_"), models, seen)
    return found


def _snippet(text: str, start: int, width: int = 70) -> str:
    return text[max(0, start - 10) : start + width].replace("\n", "\\n")


def problems(nb, name: str, forbidden: tuple[str, ...] = ()) -> list[str]:
    """Every hygiene problem of notebook ``nb`` as ``"NAME cell I (id ID): what: text"``.

    ``forbidden``: more literal strings no output may contain (the checkout's absolute path).
    """
    found = []
    models = _widget_models(nb)
    setup_cells = 0
    for i, cell in enumerate(nb.cells):
        where = f"{name} cell {i} (id {cell.get('id', '?')})"
        if cell.cell_type != "code":
            continue
        if "setup" in cell.metadata.get("tags", []):
            setup_cells += 1
            if cell.metadata.get("jupyter", {}).get("source_hidden") is not True:
                found.append(f"{where}: setup cell not collapsed (jupyter.source_hidden)")
            first = cell.source.splitlines()[0] if cell.source else ""
            if not first.startswith("# "):
                found.append(f"{where}: setup cell does not open with a one-line comment: {first!r}")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(
                    f"{where}: raw error output: {output.get('ename')}: {output.get('evalue', '')[:80]}"
                )
                continue
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view:
                for text in _frozen_widgets(view.get("model_id", ""), models):
                    found.append(f"{where}: frozen progress bar: {text}")
            for raw in _output_texts(output):
                text = _ANSI.sub("", _DATA_URI.sub("data:...", raw))
                if (m := _ABSOLUTE.search(text)) is not None:
                    found.append(f"{where}: absolute path: {m.group(0)[:80]!r}")
                else:  # the checkout or home folder elsewhere than under /work, /home, ...
                    hits = [k for lit in forbidden if lit and (k := text.find(lit)) >= 0]
                    if hits:
                        found.append(f"{where}: absolute path: {_snippet(text, min(hits))!r}")
                if (m := _ENV_DICT.search(text)) is not None:
                    found.append(f"{where}: raw environment dict: {_snippet(text, m.start())!r}")
                if (k := text.find(_TRACEBACK)) >= 0:
                    found.append(f"{where}: raw traceback: {_snippet(text, k)!r}")
                if (bar := _frozen_tqdm(text)) is not None:
                    found.append(f"{where}: frozen progress bar: {bar[:80]!r}")
    if setup_cells == 0:
        found.append(f"{name}: no setup cell (a code cell tagged 'setup')")
    return found


def _forbidden() -> tuple[str, ...]:
    home = str(Path.home())
    return tuple(p for p in (str(ROOT), home if home not in ("/", "") else "") if p)


def test_the_series_has_notebooks():
    assert NOTEBOOKS, f"no NN_name.ipynb notebooks in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_clean(path):
    nb = nbformat.read(path, as_version=4)
    found = problems(nb, path.name, _forbidden())
    assert not found, f"{len(found)} hygiene problem(s):\n" + "\n".join(found)


# --------------------------------------------------------------------------- the scanner itself


def _clean_notebook():
    v4 = nbformat.v4
    setup = v4.new_code_cell(
        "# Setup: makes pooltools importable (nothing to read here).\nimport sys",
        metadata={"tags": ["setup"], "jupyter": {"source_hidden": True}},
    )
    ran = v4.new_code_cell("print('ok')", outputs=[
        v4.new_output("stream", name="stdout", text="mode: full | CIFAR-10: data/cifar10\n"),
        v4.new_output("stream", name="stderr", text="base: 100%|██████████| 4/4 [00:01<00:00]\n"),
        v4.new_output("display_data", {"text/html": '<img src="data:image/png;base64,AA/tmp/BB">',
                                       "text/plain": "https://example.org/home/x: a URL"}),
        v4.new_output("stream", name="stdout", text="TypeError: caught and printed as one line\n"),
    ])  # fmt: skip
    return v4.new_notebook(cells=[v4.new_markdown_cell("# T"), setup, ran])


def test_a_clean_notebook_passes():
    assert problems(_clean_notebook(), "clean.ipynb", ("/srv/checkout",)) == []


def _with_output(output):
    nb = _clean_notebook()
    nb.cells[2].outputs.append(output)
    return nb


V4 = nbformat.v4


@pytest.mark.parametrize(
    "output, what, text",
    [
        (V4.new_output("stream", name="stdout", text="imported from /work/main/pooltools\n"),
         "absolute path", "/work/main/pooltools"),
        (V4.new_output("execute_result", {"text/plain": "PosixPath('/root/data')"}),
         "absolute path", "/root/data"),
        (V4.new_output("display_data", {"text/html": "<td>/home/ann/cifar</td>"}),
         "absolute path", "/home/ann/cifar"),
        (V4.new_output("stream", name="stdout", text="cache at /srv/checkout/data\n"),
         "absolute path", "/srv/checkout"),
        (V4.new_output("stream", name="stdout", text="runs: {'torch': '2.14.1', 'platform': 'L'}"),
         "raw environment dict", "{'torch'"),
        (V4.new_output("error", ename="RuntimeError", evalue="pad should be at most half",
                       traceback=["\x1b[31mRuntimeError\x1b[39m Traceback ..."]),
         "raw error output", "RuntimeError: pad should be"),
        (V4.new_output("stream", name="stderr",
                       text="Traceback (most recent call last):\n  File x\nValueError: no\n"),
         "raw traceback", "Traceback (most recent call last)"),
        (V4.new_output("display_data", {"text/plain": "epoch 1:   0%|          | 0/78 [00:00<?]"}),
         "frozen progress bar", "epoch 1:   0%|"),
        (V4.new_output("stream", name="stderr", text="  0%|   | 0/9\r 44%|####  | 4/9\n"),
         "frozen progress bar", "44%|"),
    ],
)  # fmt: skip
def test_the_scanner_names_notebook_cell_and_text(output, what, text):
    found = problems(_with_output(output), "bad.ipynb", ("/srv/checkout",))
    assert len(found) == 1, found
    assert found[0].startswith("bad.ipynb cell 2 (id ")
    assert f": {what}: " in found[0] and text in found[0], found[0]


def test_the_scanner_finds_a_frozen_progress_widget_inside_its_box():
    nb = _clean_notebook()
    view = {WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
            "text/plain": "base: 100%"}  # fmt: skip
    nb.cells[2].outputs.append(V4.new_output("display_data", view))
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_bar"]}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 0.0, "max": 78.0}},
    }
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2}}
    found = problems(nb, "w.ipynb")
    assert found == ["w.ipynb cell 2 (id " + nb.cells[2].id + "): frozen progress bar: "
                     "progress widget at 0.0/78.0"]  # fmt: skip
    nb.metadata["widgets"][WIDGET_STATE]["state"]["bar"]["state"]["value"] = 78.0
    assert problems(nb, "w.ipynb") == [], "a finished bar is fine"


def test_the_scanner_wants_a_collapsed_setup_cell_with_a_comment():
    nb = _clean_notebook()
    nb.cells[1].metadata.pop("jupyter")
    assert [p.split(": ", 1)[1] for p in problems(nb, "s.ipynb")] == [
        "setup cell not collapsed (jupyter.source_hidden)"
    ]
    nb.cells[1].metadata["jupyter"] = {"source_hidden": True}
    nb.cells[1].source = "import sys"
    assert "does not open with a one-line comment" in problems(nb, "s.ipynb")[0]
    nb.cells[1].metadata["tags"] = []
    assert problems(nb, "s.ipynb") == ["s.ipynb: no setup cell (a code cell tagged 'setup')"]
