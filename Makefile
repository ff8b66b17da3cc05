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
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	mkdir -p out/demo
	$(BIN)/lipsdf sample builtin:flower --mode signed -o out/demo/flower_signed.npz --preview out/demo/flower_signed.png
	$(BIN)/lipsdf sample builtin:torus --mode dist -o out/demo/torus_dist.npz --preview out/demo/torus_dist.png
	$(BIN)/lipsdf sample builtin:flower --mode signed -n 50000 -o out/demo/flower_train.npz -q
	$(BIN)/lipsdf train out/demo/flower_train.npz --epochs 20 --batch-size 1024 --lr 2e-3 -o out/demo/flower.pt --preview out/demo/flower_field.png
	$(BIN)/lipsdf mesh out/demo/flower.pt --iso -0.2 0 0.2 -o out/demo/flower_contour.obj
	$(BIN)/lipsdf skeleton out/demo/flower.pt -o out/demo/flower_skeleton.xyz
	$(BIN)/lipsdf sample-surface out/demo/flower.pt -n 300 -o out/demo/flower_surface.xyz
	$(BIN)/lipsdf render out/demo/flower.pt --iso -0.2 0 0.2 --overlay out/demo/flower_skeleton.xyz out/demo/flower_surface.xyz -o out/demo/flower_queries.png
	@echo "pictures in out/demo/"

clean:
	rm -rf $(VENV) out build src/*.egg-info
