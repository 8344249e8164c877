# evalkit: `make demo` evaluates the demo goldset on the embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
# Python keeps the bytecode of what it imports: with PYTHONDONTWRITEBYTECODE set (as some CI
# images do) every test's subprocess, Ray worker and browser server compiled torch, Ray,
# pandas and the rest from source again, 9 CPU-s a process importing the model's stack.
unexport PYTHONDONTWRITEBYTECODE
DEMO_HOME ?= .evalkit

.PHONY: install browser promtool system-tools demo test test-fast lint typecheck unit install-check benchmarks clean

# torch goes in first and pinned: the CPU wheel is local, and an unpinned torch pulled in by
# sentence-transformers would fetch several GB of CUDA packages. Python compiles a module
# when it is first imported: compiling all of them at install time took most of the install.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The dashboard's browser tests drive Debian's Chromium through chromedriver; both come from
# the system's packages, never from a download by a test tool.
SUDO := $(shell test "$$(id -u)" -eq 0 || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

# dashboards/'s Prometheus rules and dashboard queries are checked, and the rules unit-tested,
# by promtool, which comes with Debian's prometheus package.
promtool:
	@command -v promtool >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

demo: $(STAMP)
	EVALKIT_HOME=$(DEMO_HOME) $(BIN)/evalkit goldset import --format jsonl goldsets/demo --name demo
	EVALKIT_HOME=$(DEMO_HOME) $(BIN)/evalkit index --corpus goldsets/demo/corpus.jsonl --collection demo
	EVALKIT_HOME=$(DEMO_HOME) $(BIN)/evalkit run --goldset demo --collection demo --where-key tenant --k 100 --next-steps

LINTED := $(wildcard evalkit tests benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy evalkit

# Test files are spread over TEST_WORKERS processes, one more than there are cores; each keeps
# a file's tests together, so a module's fixtures are built once. With a worker per core, the
# cores stood idle 11 % of the run while tests waited on servers, browsers and real latencies;
# the extra worker fills that (18 m 59 s against 20 m 15 s here, idle 2.5 %).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
# A worker that crashes (a segfault in a C extension) fails the run at once, naming the test it
# ran: xdist 3.8 replaces it, and under loadfile the run then waits forever (pytest-xdist#784).
XDIST = -n $(TEST_WORKERS) --dist loadfile --max-worker-restart=0

# The workers take every core, so the libraries they call keep to one thread each: torch, the
# BLAS libraries and ONNX Runtime (which evalkit caps by OMP_NUM_THREADS too) each took a thread
# per core, and the workers' threads waiting on each other cost 7 % more CPU for the same tests.
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

unit: $(STAMP) browser promtool
	$(ONE_THREAD) $(BIN)/python -m pytest $(XDIST)

# The edit loop: every test but those marked slow (each takes seconds: real embeddings,
# servers, clusters, a browser, other processes), spread over the cores as make unit does.
test-fast: $(STAMP)
	$(ONE_THREAD) $(BIN)/python -m pytest $(XDIST) -m "not slow"

# The built wheel in fresh venvs: the core alone, then [all] running the demo and dashboard.
install-check: $(STAMP)
	$(BIN)/python tests/install_check.py

# Debian's packages are installed while pip installs the project (lint waits on that), one
# apt-get after the other: two at once would contend for dpkg's lock.
system-tools:
	@$(MAKE) --no-print-directory browser && $(MAKE) --no-print-directory promtool

# mypy and the install check run beside the unit tests at nice 10: they take the moments the
# tests leave a core idle (servers starting, browsers and real latencies waited for) and a
# tenth of the cores otherwise, where they took two minutes of their own before the tests.
# Their output is shown whole after the tests'; any failure fails the target.
test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint system-tools
	@checks=$$(mktemp); \
	nice -n 10 $(MAKE) --no-print-directory -j2 --output-sync=target typecheck install-check \
		>$$checks 2>&1 & pid=$$!; \
	$(MAKE) --no-print-directory unit; tests=$$?; \
	wait $$pid; checked=$$?; cat $$checks; rm -f $$checks; \
	test $$tests -eq 0 && test $$checked -eq 0

clean:
	rm -rf $(VENV) .evalkit .pytest_cache .mypy_cache .ruff_cache
