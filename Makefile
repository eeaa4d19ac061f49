# pooling-explained: two commands set everything up on a fresh clone.
#   make lab    create .venv if missing, install, open JupyterLab on notebooks/
#   make test   create .venv if missing, install, run the unit tests then nbval (quick mode)
#   make student / make site   workshop hand-outs under build/ (see the targets below)
# A second run reuses .venv and reinstalls only when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-from-pyproject
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: install lab test unit nbval run lint student site train predictions clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# The stamp is newer than pyproject.toml after a successful install; touching or editing
# pyproject.toml makes it stale, so the next make reinstalls. A failed install leaves no stamp.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# JupyterLab on 127.0.0.1 with a random token, --allow-root only for root (see
# pooltools/tools/lab.py); LAB_ARGS=--dry-run prints the command instead.
lab: $(STAMP)
	$(PY) -m pooltools.tools.lab $(LAB_ARGS)

test: unit nbval

unit: $(STAMP)
	POOLTOOLS_QUICK=1 $(PY) -m pytest tests

# --nbval-lax: every cell must run without error; only cells marked NBVAL_CHECK_OUTPUT
# have their output compared with the committed one.
nbval: $(STAMP)
	POOLTOOLS_QUICK=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider \
		--nbval-cell-timeout=600 --sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

# Execute every notebook in place in full mode, to refresh the committed outputs, and time each
# run in full and quick mode into data/reference_timings.json (notebook 00 predicts run times from it).
run: $(STAMP)
	$(PY) -m pooltools.tools.timings --save-full --notebooks $(NOTEBOOKS)

# Train with the one recipe of every committed checkpoint in data/checkpoints/ (pooltools.train.RECIPE,
# the CLI's defaults; see the checkpoints' README). Finished checkpoints are kept and interrupted ones
# resume; FORCE=1 retrains from scratch. SEEDS="0 1 2" trains every variant at each seed (seed 0 is
# NAME.pt, seed s is NAME-seedS.pt).
TRAIN_VARIANTS ?= base avgpool strided allconv convpool blurpool unpooled dilated
SEEDS ?= 0
train: $(STAMP)
	@for s in $(SEEDS); do for m in $(TRAIN_VARIANTS); do \
		echo "== train $$m seed $$s"; \
		POOLTOOLS_QUICK=0 $(PY) -m pooltools.train --model $$m --seed $$s \
			--out data/checkpoints $(if $(FORCE),--no-resume,) || exit 1; \
	done; done

# Every finished checkpoint's predictions on the test set (plain and shifted), for notebook 3's
# paired statistics: data/checkpoints/predictions.npz. Unchanged checkpoints are not re-evaluated.
predictions: $(STAMP)
	POOLTOOLS_QUICK=0 $(PY) -m pooltools.tools.predictions

lint: $(STAMP)
	$(VENV)/bin/ruff check pooltools tests notebooks

# Workshop hand-outs: copies without solutions or outputs (build/student), and the series as a
# static website with the committed outputs (build/site, open build/site/index.html).
student: $(STAMP)
	$(PY) -m pooltools.tools.student --out build/student

site: $(STAMP)
	$(PY) -m pooltools.tools.site --out build/site

# The model card data/checkpoints/README.md and data/checkpoints/summary.json (per variant: seeds,
# test accuracies, params, MACs, receptive field, median s/epoch), generated from the JSON histories.
.PHONY: card
card: $(STAMP)
	$(PY) -m pooltools.tools.model_card
