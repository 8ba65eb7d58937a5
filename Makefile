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
# RQ3: encoders also run with Whisper's padded 30 s context (the variant; the clip's own length is the default)
CONTEXT_VARIANTS ?= whisper-tiny.en whisper-base
# RQ5: encoders re-run on each clip's first CUT_SECONDS, then probed by experiments/duration.py
CUT_ENCODERS ?= egemaps whisper-tiny.en whisper-base
CUT_SECONDS ?= 1 1.5 2 2.5 3
# RQ7: unlabelled clips per test speaker behind the `speaker` protocol's statistics, and random draws of them
ENROLMENT_K ?= 1 2 4 8 16 32
ENROLMENT_DRAWS ?= 3
# options for the probe grid, e.g. PROBE_OPTIONS="--normalisations global" (experiments/train_probes.py --help)
PROBE_OPTIONS ?=
export RAVDESS_ROOT

.PHONY: setup test download audio-offline audio-hub controls variants cuts openface video face probes transfer \
	duration enrolment findings all offline

setup:  ## create .venv, install the pinned requirements and the emoprobe package (editable)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .

test:  ## the test suite (skips what needs ../shared/data when it is absent)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs --durations=10  # -rs: why each skip; the slowest tests show what ran

download:  ## RAVDESS speech audio (+ video with WHAT="audio-speech video-speech") into data/raw
	$(PY) experiments/download_ravdess.py --what $(or $(WHAT),audio-speech)

audio-offline:  ## every audio encoder that needs no model hub (hand-crafted, Whisper, ...)
	$(PY) experiments/extract_audio.py --encoders offline

audio-hub:  ## the audio encoders whose weights come from the model hub (not run offline: said so, not fatal)
	$(PY) experiments/extract_audio.py --encoders hub

controls:  ## random-init twins (same architecture, random weights): research question 4
	$(PY) experiments/extract_audio.py --encoders controls $(HUB_CONTROLS) --no-sequences

variants:  ## the 30 s context variant of CONTEXT_VARIANTS (RQ3: what padding to 30 s changes)
	$(if $(strip $(CONTEXT_VARIANTS)),$(PY) experiments/extract_audio.py --encoders $(CONTEXT_VARIANTS) --set context=30s --no-sequences)

cuts:  ## CUT_ENCODERS on each clip's first CUT_SECONDS (RQ5: UA against clip duration)
	$(foreach s,$(CUT_SECONDS),$(PY) experiments/extract_audio.py --encoders $(CUT_ENCODERS) --first-seconds $(s) --no-sequences &&) true

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
	$(PY) experiments/extract_face.py --contact-sheet analysis/figures/face_crops_contact_sheet.png

probes:  ## the probe grid on every complete store
	$(PY) experiments/train_probes.py $(PROBE_OPTIONS)

transfer:  ## RQ5: probes trained on the male actors tested on the female ones, and back
	$(PY) experiments/transfer.py --train $(RAVDESS_ROOT) --test $(RAVDESS_ROOT) --train-where sex=male --test-where sex=female
	$(PY) experiments/transfer.py --train $(RAVDESS_ROOT) --test $(RAVDESS_ROOT) --train-where sex=female --test-where sex=male

duration:  ## RQ5: UA when only each clip's first seconds are heard (needs `make cuts`)
	$(PY) experiments/duration.py

enrolment:  ## RQ7: the `speaker` protocol with only k unlabelled clips of each test speaker (after `make probes`)
	$(PY) experiments/enrolment.py --k $(ENROLMENT_K) --draws $(ENROLMENT_DRAWS)

findings:  ## findings.md and research_questions.md from results/, then the notebooks in place
	$(PY) experiments/make_findings.py
	$(PY) experiments/run_notebooks.py

all: audio-offline audio-hub controls variants cuts openface video face probes transfer duration enrolment findings  ## everything (hub models need internet)

offline: export HF_HUB_OFFLINE := 1  # no hub lookups at all (else each model retries the network first)
offline: audio-offline controls variants cuts openface face probes transfer duration enrolment findings  ## what runs with no internet (the committed results)
