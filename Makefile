# Every target is one step: `python -m competition <step>`. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KIT := $(PY) -m competition

DATASET ?= freesound-audio-tagging
EXPERIMENTS ?= experiments/logmel-cnn.toml experiments/mfcc-cnn.toml experiments/logmel-bins-cnn.toml
EXPERIMENT_ARGS = $(foreach e,$(EXPERIMENTS),--experiment $(e))
NAME ?= submission
KERNEL_TITLE ?= audio tagging kit
RUNS ?= $(foreach e,$(EXPERIMENTS),$(DATASET)-$(basename $(notdir $(e))))

.DEFAULT_GOAL := help
.PHONY: help venv data features train ensemble validate score submit submissions kernel kernel-status kernel-output report predict transfer demo bench bench-quality test clean

help: ## list the targets (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: DATASET=$(DATASET) EXPERIMENTS='$(EXPERIMENTS)' RUNS=... NAME=... SUB=... FROM=DIR"
	@echo "  Kaggle: MSG=... FOLDS=all KERNEL_TITLE='$(KERNEL_TITLE)' KERNEL=slug"

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# tinysoundfont declares pyaudio (playback only, needs PortAudio headers); the kit only renders.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

venv: $(VENV)/.installed ## create .venv from the pinned requirements

data: venv ## obtain DATASET into data/<dataset>/ and verify it (FROM=DIR uses a local copy)
	$(KIT) data --dataset $(DATASET) $(if $(FROM),--from $(FROM))

features: venv ## cache features of DATASET for EXPERIMENTS under features/<dataset>/<key>/
	$(KIT) features --dataset $(DATASET) $(EXPERIMENT_ARGS)

train: venv ## train EXPERIMENTS on DATASET, one model per fold, into runs/<dataset>-<experiment>/
	$(KIT) train --dataset $(DATASET) $(EXPERIMENT_ARGS)

ensemble: venv ## blend RUNS (geometric mean, OOF-fitted weights) into submissions/NAME.csv and its .json
	$(KIT) ensemble $(RUNS) --name $(NAME)

report: venv ## rebuild runs/RUN/report/: CV per fold, per-class accuracy, confusion matrix, learning curves
	$(KIT) report $(RUN)

validate: venv ## check SUB=path.csv against DATASET's test clips and vocabulary
	$(KIT) validate --dataset $(DATASET) $(SUB)

score: venv ## public/private MAP@3 of SUB=path.csv from the post-competition test labels
	$(KIT) score --dataset $(DATASET) $(SUB)

submit: venv ## validate SUB=path.csv, then upload it to Kaggle with its CV score and hashes (MSG=note)
	$(KIT) submit --dataset $(DATASET) $(SUB) $(if $(MSG),--message "$$MSG")

submissions: venv ## your recent Kaggle submissions with their public/private scores
	$(KIT) submissions

kernel: venv ## build a Kaggle kernel for EXPERIMENTS and push it (FOLDS=all: one per fold + a blend kernel)
	$(KIT) kernel --dataset $(DATASET) $(EXPERIMENT_ARGS) $(if $(FOLDS),--folds $(FOLDS)) --title "$(KERNEL_TITLE)"

kernel-status: venv ## state of the pushed kernels (KERNEL=slug for one)
	$(KIT) kernel-status $(KERNEL)

kernel-output: venv ## download pushed kernels' outputs into runs/<slug>/ (KERNEL=slug for one)
	$(KIT) kernel-output $(KERNEL)

transfer: venv ## fine-tune BASE=<run> on DATASET (default urbansound8k, its predefined folds) into runs/
	$(KIT) transfer --base $(BASE) --dataset $(if $(filter command line,$(origin DATASET)),$(DATASET),urbansound8k)

predict: venv ## top-3 tags of FILES='a.wav b.wav' from RUN=<run>
	$(KIT) predict --run $(RUN) $(FILES)

demo: venv ## every step, offline, on a generated demo competition, then a report
	$(KIT) demo

bench: venv ## speed of features (seed, Zafar, librosa, kit on all cores), then of training
	$(KIT) bench

bench-quality: venv ## accuracy on real audio in ../shared/data: kit recipe vs Zafar kernel, ablation (QUICK=1: none)
	$(KIT) bench-quality $(if $(QUICK),--quick)

test: venv ## run the test suite
	$(PY) -m pytest -q

clean: ## remove generated features, runs, folds and submissions (not data/ or .venv)
	rm -rf features/*/ runs folds submissions/*.csv submissions/*.json kernels/build
