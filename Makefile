# Two entry points (see README): `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/worldcast generate --prompt "a top-down view of a ocean at day" --actions "right*40,down*42" --out out/demo.mp4

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/dit_throughput.py
	$(VENV)/bin/python benchmarks/cache_vs_recompute.py

clean:
	rm -rf $(VENV) out
