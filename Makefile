# make demo: install into .venv and run the demo.   make test: install and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench install
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: install
	$(PY) -m pipelines.demo $(ARGS)

test: install
	@# the report test opens report.html in headless Chromium: install Debian's chromium where we may (as root,
	@# with apt-get; best effort: without it that test is skipped)
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the report test"; \
		apt-get install -y chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && \
			apt-get install -y chromium >/dev/null 2>&1) || echo "could not install chromium: its test will be skipped"; \
	fi
	@# a test file to a process, one process a CPU: 2 cores ran the suite in 400 s, against 581 s in one process
	$(PY) -m pytest -q -n auto --dist loadfile $(ARGS)

# make bench: every speed benchmark, printing its numbers (bench/RESULTS.md); ARGS=--quick for a smoke run
bench: install
	$(PY) bench/extract.py $(ARGS)
	$(PY) bench/decode_backends.py $(ARGS)
	$(PY) bench/train_throughput.py $(ARGS)
	$(PY) bench/inference.py $(ARGS)
	$(PY) bench/decode.py $(ARGS)
