# Set-up, tests and the whole pipeline. Override any variable: make all RAVDESS_ROOT=/path/to/ravdess
# Which encoders run is read from the encoder registry (experiments/extract_audio.py --list).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
RAVDESS_ROOT ?= data/raw
# OpenFace input, if you have it: per-frame CSVs (Zenodo record 3255102) or a per-clip AU means table
OPENFACE_CSV_DIR ?=
OPENFACE_AU_MEANS ?=
# random twins of hub encoders that run offline too (the audio controls of the committed results)
HUB_CONTROLS ?= wav2vec2-base-randinit
export RAVDESS_ROOT

.PHONY: setup test download audio-offline audio-hub controls openface video face probes findings all offline

setup:  ## create .venv, install the pinned requirements and the emoprobe package (editable)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .

test:  ## the test suite (skips what needs ../shared/data when it is absent)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

download:  ## RAVDESS speech audio (+ video with WHAT="audio-speech video-speech") into data/raw
	$(PY) experiments/download_ravdess.py --what $(or $(WHAT),audio-speech)

audio-offline:  ## every audio encoder that needs no model hub (hand-crafted, Whisper, ...)
	$(PY) experiments/extract_audio.py --encoders offline

audio-hub:  ## the audio encoders whose weights come from the model hub (not run offline: said so, not fatal)
	$(PY) experiments/extract_audio.py --encoders hub

controls:  ## random-init twins (same architecture, random weights): research question 4
	$(PY) experiments/extract_audio.py --encoders controls $(HUB_CONTROLS) --no-sequences

openface:  ## OpenFace action units, when OPENFACE_CSV_DIR or OPENFACE_AU_MEANS is given
ifneq ($(OPENFACE_CSV_DIR),)
	$(PY) experiments/extract_openface.py --csv-dir $(OPENFACE_CSV_DIR)
else ifneq ($(OPENFACE_AU_MEANS),)
	$(PY) experiments/extract_openface.py --au-means $(OPENFACE_AU_MEANS)
else
	@echo "openface: skipped (give OPENFACE_CSV_DIR=<per-frame CSVs> or OPENFACE_AU_MEANS=<per-clip table>)"
endif

video:  ## TimeSformer on the mp4s (model hub)
	$(PY) experiments/extract_video.py

face:  ## MTCNN + the offline face models on the mp4s
	$(PY) experiments/extract_face.py

probes:  ## the probe grid on every complete store
	$(PY) experiments/train_probes.py

findings:  ## findings.md and research_questions.md from results/, then the notebooks in place
	$(PY) experiments/make_findings.py
	$(PY) experiments/run_notebooks.py

all: audio-offline audio-hub controls openface video face probes findings  ## everything (hub models need internet)

offline: export HF_HUB_OFFLINE := 1  # no hub lookups at all (else each model retries the network first)
offline: audio-offline controls openface face probes findings  ## what runs with no internet (the committed results)
