# make run  : install if needed, then run the demo workflow (tiny built-in model, data/ styles)
# make test : install if needed, then run the test suite
# make test-challenge : the challenge's B-set shape end to end (28 x 25 x 3; CI runs it after make test)
VENV  ?= .venv
CORES ?= 2
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Jittor compiles its kernels into a cache; keep it inside the checkout (see README, "Jittor engine").
export JITTOR_HOME ?= $(CURDIR)/.cache/jittor-home
# The tests run on one pytest-xdist worker per core; tests sharing Jittor's cache or the SLURM node are
# grouped on one worker (tests/conftest.py). TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= $(CORES)
PYTEST := $(VENV)/bin/python -m pytest -ra -n $(TEST_WORKERS) --dist loadgroup

.PHONY: setup run test test-fast test-challenge clean

setup: $(STAMP)
$(STAMP): requirements.txt constraints.txt pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

run: $(STAMP)
	snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/results/report/index.html"

test: $(STAMP)
	$(PYTEST) -m "not challenge"

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not jittor and not slurm and not challenge"

# one process: its one Snakemake run (--cores $(CORES)) is the whole work, and its tests share it
test-challenge: $(STAMP)
	$(VENV)/bin/python -m pytest -ra -m challenge tests/test_challenge_run.py

clean:
	rm -rf results/* .snakemake
