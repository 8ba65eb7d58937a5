# Set-up, tests and the whole pipeline. Override any variable: make all RAVDESS_ROOT=/path/to/ravdess
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
RAVDESS_ROOT ?= data/raw
# encoders that need the model hub (run them where it is reachable)
HUB_AUDIO ?= wav2vec2 hubert wavlm whisper ast
# encoders that run offline: hand-crafted baselines and Whisper tiny.en shipped in a wheel
OFFLINE_AUDIO ?= egemaps compare logmel mfcc whisper-ct2
export RAVDESS_ROOT

.PHONY: setup test download audio audio-offline controls openface video face probes findings all offline

setup:  ## create .venv and install the pinned requirements
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt

test:  ## the test suite (skips what needs ../shared/data when it is absent)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

download:  ## RAVDESS speech audio (+ video with WHAT="audio-speech video-speech") into data/raw
	$(PY) experiments/download_ravdess.py --what $(or $(WHAT),audio-speech)

audio-offline:
	HF_HUB_OFFLINE=1 $(PY) experiments/extract_audio.py --encoders $(OFFLINE_AUDIO)

audio: audio-offline
	$(PY) experiments/extract_audio.py --encoders $(HUB_AUDIO)

controls:  ## random-init twins (same architecture, random weights): research question 4
	HF_HUB_OFFLINE=1 $(PY) experiments/extract_audio.py --encoders wav2vec2 --random-init --no-sequences

openface:  ## real OpenFace AU means (developers: ../shared/data) or per-frame CSVs (--csv-dir)
	$(PY) experiments/extract_openface.py

video:
	$(PY) experiments/extract_video.py

face:
	$(PY) experiments/extract_face.py

probes:
	$(PY) experiments/train_probes.py

findings:  ## findings.md and research_questions.md from results/, then the notebooks in place
	$(PY) experiments/make_findings.py
	$(PY) -m emoprobe.analysis

all: audio controls video face probes findings  ## the whole pipeline with the hub models (needs internet)

offline: audio-offline controls openface probes findings  ## what runs with no internet (the committed results)
