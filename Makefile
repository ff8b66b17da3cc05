# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv on first use. torch==2.13.0 is installed first, explicitly:
# it is the CPU wheel this machine has on disk; pyproject.toml itself asks for torch>=2.2.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,ray,export,browser]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

# QUICK=--quick makes the demo's fit a one-minute preview (CI runs it that way).
QUICK ?=
DEMO := out/demo/flower

demo: setup
	$(BIN)/lipsdf fit builtin:flower -o $(DEMO) $(QUICK)
	$(BIN)/lipsdf skeleton $(DEMO)/flower.pt -o $(DEMO)/flower_skeleton.xyz
	$(BIN)/lipsdf sample-surface $(DEMO)/flower.pt -n 300 -o $(DEMO)/flower_surface.xyz
	$(BIN)/lipsdf render $(DEMO)/flower.pt --iso -0.2 0 0.2 --overlay $(DEMO)/flower_skeleton.xyz $(DEMO)/flower_surface.xyz -o $(DEMO)/flower_queries.png
	@echo "pictures: $(DEMO)/flower.png (field and gradient norm), $(DEMO)/flower_queries.png (iso-contours, skeleton, surface samples); metrics: $(DEMO)/metrics.json"

clean:
	rm -rf $(VENV) out build src/*.egg-info
