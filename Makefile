# Two commands do everything on a fresh Debian machine:
#   make compare   set up, then train every BN variant and write the comparison report
#   make test      set up, then run the test suite (it also installs Debian's chromium and
#                  chromium-driver for the browser tests; BNBENCH_NO_BROWSER=1 make test installs
#                  no browser and skips those tests, for machines without root)
PY := .venv/bin/python
DATA := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data browser compare test readme-picture
setup: data .venv/.installed

# Only this step needs root (or sudo); without either, README's "Without root" gives the other way in.
NOROOT := make: installing Debian's dataset-fashion-mnist needs root or sudo; without them run \
  python3 -m venv .venv && .venv/bin/pip install -e '.[test]', then .venv/bin/python -m launch.compare \
  --data-dir DIR (a folder holding the four Fashion-MNIST .gz files) or --download (README: Without root)

data:
	@if [ ! -f $(DATA)/train-images-idx3-ubyte.gz ]; then \
	  if [ -n "$(SUDO)" ] && ! command -v sudo >/dev/null; then echo "$(NOROOT)" >&2; exit 1; fi; \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; } || \
	  { echo "$(NOROOT)" >&2; exit 1; }; fi

# Only `make test` needs a browser: `make compare` never installs one.
browser:
	@if [ -n "$$BNBENCH_NO_BROWSER" ] && [ "$$BNBENCH_NO_BROWSER" != 0 ]; then \
	  echo "BNBENCH_NO_BROWSER=$$BNBENCH_NO_BROWSER: no browser installed; the browser tests will be skipped"; \
	elif ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing Debian's chromium and chromium-driver (the browser tests)"; \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; } || \
	  { echo "make test: could not install chromium and chromium-driver (needs root or sudo);" \
	    "set BNBENCH_NO_BROWSER=1 to skip the browser tests" >&2; exit 1; }; fi

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

compare: setup
	$(PY) -m launch.compare $(ARGS)

# pytest exits 5 when it collects no test: that is a broken suite, so say so and fail.
test: setup browser
	$(PY) -m pytest $(ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

# The README's picture, docs/img/report.png: a short real comparison on this machine, its report
# photographed in headless Chromium (devtools/readme_picture.py). ARGS="--keep DIR" keeps the runs.
readme-picture: setup browser
	$(PY) -m devtools.readme_picture $(ARGS)
