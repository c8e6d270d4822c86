# Set-up and the two README commands. Everything installs into .venv with the pinned versions.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Offline machines read the staged data beside the repo; elsewhere the loaders download into ~/.cache/badnets.
BADNETS_DATA ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd)
export BADNETS_DATA
OUT    ?= runs/mnist-quick
# The test suite's workers: a test file runs whole on one of them (its fixtures are built once; Ray's tests never
# share a machine's ports), so two cores run the suite in about half the time.
TEST_WORKERS ?= 2
# Extra options for every `badnets reproduce` below, e.g. REPRODUCE_ARGS=--allow-dirty for a tree with local changes.
REPRODUCE_ARGS ?=

.PHONY: setup demo test lint full traffic transfer photos supply-chain defenses audit-round calibration audit-example bench readme clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,ray]'
	touch $@

demo: setup          ## quick MNIST BadNets reproduction with its report (~2 min on 2 CPU cores)
	$(VENV)/bin/badnets reproduce mnist --quick --out $(OUT) $(REPRODUCE_ARGS)

full: setup          ## the whole MNIST case study (hours on CPU); re-run to resume
	$(VENV)/bin/badnets reproduce mnist --out runs/mnist-full $(REPRODUCE_ARGS)

traffic: setup       ## traffic-sign classifiers (3 seeds) and 7 composite-scene detectors (hours on 2 cores); re-run to resume
	$(VENV)/bin/badnets reproduce traffic --out runs/traffic --archive docs/results/traffic/records \
		--data-dir ../shared/data $(REPRODUCE_ARGS)

transfer: setup      ## the transfer-learning attack on GTSRB (≈ 25 min on 2 cores)
	$(VENV)/bin/badnets reproduce transfer --out runs/transfer $(REPRODUCE_ARGS)

photos: traffic      ## dog + trigger → "cat", and triggered stop signs in road photos (after `make traffic`)
	$(VENV)/bin/badnets reproduce photos --out runs/photos --traffic runs/traffic $(REPRODUCE_ARGS)

supply-chain: setup ## the Caffe-Model-Zoo replay: 14 models, 6 attacks x 5 defenses (≈ 10 min on 2 cores)
	$(VENV)/bin/badnets reproduce supply-chain --out runs/supply-chain $(REPRODUCE_ARGS)

defenses: setup     ## the defense scoreboard: 30 models, every detector and repair (≈ 50 min on 2 cores)
	$(VENV)/bin/badnets reproduce defenses --out runs/defenses $(REPRODUCE_ARGS)

# The committed round: its finished models' records live in docs/results/audit-round/records (restored first, each
# chunk of 8 added as it finishes), so any clone resumes it; they name the data folder they were trained from.
audit-round: setup  ## the audit judged on train / validation / test rounds of 350 models (many hours on 2 cores)
	$(VENV)/bin/badnets reproduce audit-round --out runs/audit-round --chunk 8 \
		--archive docs/results/audit-round/records --data-dir ../shared/data $(REPRODUCE_ARGS)

calibration: audit-round  ## ship the round's calibration as the audit's backdoor probability
	mkdir -p src/badnets/calibrations && cp runs/audit-round/calibration.json src/badnets/calibrations/audit.json

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src tests benchmarks

test: lint           ## lint, type-check, then the test suite
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

readme: setup        ## re-render the result tables of README.md and docs/*.md from docs/results/*/results.json
	$(PY) -c "from pathlib import Path; from badnets.studies.reports import readme_with_tables as r; [p.write_text(r(p.read_text(), Path('.'))) for p in (Path('README.md'), *Path('docs').glob('*.md'))]"

audit-example: setup  ## a one-epoch MNIST BadNet and its clean twin, each given a default audit (~2 min)
	$(VENV)/bin/badnets attack --dataset mnist --trigger pattern --target 7 --epochs 1 --out runs/audit-example/a2o-7
	$(VENV)/bin/badnets attack --dataset mnist --baseline --target 7 --epochs 1 --out runs/audit-example/clean
	$(VENV)/bin/badnets audit --model runs/audit-example/a2o-7 --out runs/audit-example/audit-a2o-7
	$(VENV)/bin/badnets audit --model runs/audit-example/clean --out runs/audit-example/audit-clean

bench: setup
	$(PY) benchmarks/run.py --json runs/bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
