# make run  : install if needed, then run the demo workflow (tiny built-in model, data/ styles)
# make test : install if needed, then run the test suite
VENV  ?= .venv
CORES ?= 2
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Jittor compiles its kernels into a cache; keep it inside the checkout (see README, "Jittor engine").
export JITTOR_HOME ?= $(CURDIR)/.cache/jittor-home

.PHONY: setup run test test-fast clean

setup: $(STAMP)
$(STAMP): requirements.txt constraints.txt pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

run: $(STAMP)
	snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/results/report/index.html"

test: $(STAMP)
	$(VENV)/bin/python -m pytest -ra

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -ra -m "not slow and not jittor and not slurm"

clean:
	rm -rf results/* .snakemake
