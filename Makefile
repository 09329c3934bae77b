# Two commands do everything on a fresh Debian machine:
#   make compare   set up, then train every BN variant and write the comparison report
#   make test      set up, then run the test suite
PY := .venv/bin/python
DATA := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data compare test
setup: data .venv/.installed

data:
	@if [ ! -f $(DATA)/train-images-idx3-ubyte.gz ]; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; fi

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

compare: setup
	KINETO_LOG_LEVEL=5 $(PY) -m launch.compare $(ARGS)

# pytest exits 5 when it collects no test: that is a broken suite, so say so and fail.
test: setup
	KINETO_LOG_LEVEL=5 $(PY) -m pytest $(ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc
