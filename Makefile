# Every target is one step: `python -m competition <step>`, so `make train` and
# `python -m competition train` do the same. Variables left unset take the kit's own defaults
# (the dataset registry, config.DEFAULT_EXPERIMENTS); set, they are passed on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KIT := $(PY) -m competition

DATASET_ARG = $(if $(DATASET),--dataset $(DATASET))
EXPERIMENT_ARGS = $(foreach e,$(EXPERIMENTS),--experiment $(e))

.DEFAULT_GOAL := help
.PHONY: help venv data features train ensemble validate score submit submissions kernel kernel-status kernel-output report predict app transfer demo bench bench-quality bench-scale test test-fast lint clean

help: ## list the targets (this text)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: DATASET=name EXPERIMENTS='a.toml b.toml' RUNS='run ...' NAME=... SUB=... FROM=DIR"
	@echo "    (unset: the kit's own defaults, shown by: python -m competition STEP --help)"
	@echo "  Kaggle: MSG=... FOLDS=all KERNEL_TITLE='...' KERNEL_GPU=T4x2|P100|none KERNEL_SLOTS=2 KERNEL_HOURS=11 KERNEL_POLL=60 FORCE=1 KERNEL=slug"

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# tinysoundfont declares pyaudio (playback only, needs PortAudio headers); the kit only renders.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

venv: $(VENV)/.installed ## create .venv from the pinned requirements

data: venv ## obtain DATASET into data/<dataset>/ and verify it (FROM=DIR uses a local copy)
	$(KIT) data $(DATASET_ARG) $(if $(FROM),--from $(FROM))

features: venv ## cache features of DATASET for EXPERIMENTS under features/<dataset>/<key>/ (VERIFY=1: check every clip's CRC)
	$(KIT) features $(DATASET_ARG) $(EXPERIMENT_ARGS) $(if $(VERIFY),--verify)

train: venv ## train EXPERIMENTS on DATASET, one model per fold, into runs/<dataset>-<experiment>/
	$(KIT) train $(DATASET_ARG) $(EXPERIMENT_ARGS) $(if $(EXCLUDE_SOURCES_OF),--exclude-sources-of $(EXCLUDE_SOURCES_OF))

ensemble: venv ## blend RUNS (default: EXPERIMENTS' runs; geometric mean, OOF-fitted weights) into submissions/NAME.csv + .json
	$(KIT) ensemble $(RUNS) $(DATASET_ARG) $(EXPERIMENT_ARGS) $(if $(NAME),--name $(NAME))

report: venv ## rebuild runs/RUN/report/ (CV, per-class accuracy, confusions, curves); RUN=submissions/x.csv: its blend
	$(KIT) report $(RUN)

validate: venv ## check SUB=path.csv against DATASET's test clips and vocabulary
	$(KIT) validate $(DATASET_ARG) $(SUB)

score: venv ## public/private MAP@3 of SUB=path.csv from the post-competition test labels
	$(KIT) score $(DATASET_ARG) $(SUB)

submit: venv ## validate SUB=path.csv, then upload it to Kaggle with its CV score and hashes (MSG=note)
	$(KIT) submit $(DATASET_ARG) $(SUB) $(if $(MSG),--message "$$MSG")

submissions: venv ## your recent Kaggle submissions with their public/private scores
	$(KIT) submissions $(DATASET_ARG)

kernel: venv ## build a Kaggle kernel for EXPERIMENTS and push it (FOLDS=all: features, one per fold, blend)
	$(KIT) kernel $(DATASET_ARG) $(EXPERIMENT_ARGS) $(if $(FOLDS),--folds $(FOLDS)) $(if $(KERNEL_TITLE),--title "$(KERNEL_TITLE)") \
		$(if $(KERNEL_GPU),--gpu $(KERNEL_GPU)) $(if $(KERNEL_SLOTS),--slots $(KERNEL_SLOTS)) \
		$(if $(KERNEL_HOURS),--hours $(KERNEL_HOURS)) $(if $(KERNEL_POLL),--poll-seconds $(KERNEL_POLL)) $(if $(FORCE),--force)

kernel-status: venv ## state of the pushed kernels (KERNEL=slug for one)
	$(KIT) kernel-status $(KERNEL)

kernel-output: venv ## download pushed kernels' outputs into runs/<slug>/ (KERNEL=slug for one)
	$(KIT) kernel-output $(KERNEL)

transfer: venv ## fine-tune BASE=<run> on DATASET (default urbansound8k, its predefined folds) into runs/
	$(KIT) transfer --base $(BASE) $(DATASET_ARG) $(if $(ALLOW_LEAKAGE),--allow-leakage)

predict: venv ## top-3 tags of FILES='a.wav b.wav' from RUN=<run>
	$(KIT) predict --run $(RUN) $(FILES)

app: venv ## a local page (127.0.0.1, PORT=...) tagging any recording with RUN=<run or submissions/<blend>.csv>
	$(KIT) app --run $(RUN) $(if $(PORT),--port $(PORT))

demo: venv ## every step, offline, on a generated demo competition, then a report
	$(KIT) demo

bench: venv ## speed of features (seed, Zafar, librosa, kit on all cores), then of training
	$(PY) -m benchmarks speed

bench-quality: venv ## accuracy on real audio in ../shared/data: kit recipe vs Zafar kernel, transfer, ablation (QUICK=1: no ablation retraining; ONLY=fsd-subset,transfer,fsd-transfer,esc50,esc10,esc10-transfer,urbansound8k; FINISHED=1: train nothing)
	$(PY) -m benchmarks quality $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY)) $(if $(FINISHED),--finished-only)

bench-scale: venv ## FOLDS=all kernels run here on a full-size generated competition (rendered once, ~10 GB, into SCALE_DIR=bench-scale/): time, memory, cache disk, Kaggle projection (ALL_FOLDS=1: every fold kernel)
	$(PY) -m benchmarks scale $(if $(SCALE_DIR),--dir $(SCALE_DIR)) $(if $(ALL_FOLDS),--all-folds)

# pytest-xdist's workers: most of a test's time is single-threaded Python (Keras tracing tiny models,
# processes starting); tests on the Kaggle stand-in's fixed port share one worker (their group).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test: venv ## run the test suite (TEST_WORKERS=2 processes; 0: all in one)
	$(PYTEST)

test-fast: venv ## the unit tests only (no slow end-to-end, training or process-spawning checks)
	$(PYTEST) -m "not slow"

lint: venv ## ruff over the package, the benchmarks and the tests
	$(PY) -m ruff check competition benchmarks tests

clean: ## remove generated features, runs, folds and submissions (not data/ or .venv)
	rm -rf features/*/ runs folds submissions/*.csv submissions/*.json kernels/build
