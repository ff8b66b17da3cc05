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
	@echo "pictures in out/demo/"

clean:
	rm -rf $(VENV) out build src/*.egg-info
