# numaguard: every target creates/uses .venv, so a fresh machine needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
# System packages: libvirt headers for libvirt-python, libvirt's schemas + virt-xml-validate.
APT_PACKAGES := libvirt-dev pkg-config libvirt-clients libxml2-utils
EXAMPLE := examples/article-host

.PHONY: demo test test-fast bench lint docs system-deps clean oracle oracle-table oracle-qemu fuzz bytecode \
  libvirtd-deps test-libvirtd test-libvirtd-bounded test-prometheus bench-plan

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,lint]'
	touch $(STAMP)

# Optional parts: libvirt-python needs libvirt-dev + pkg-config (Debian). Installed when apt is
# available (root on a fresh machine); tests that need them skip with a reason otherwise.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

$(VENV)/.libvirt: $(STAMP) system-deps
	@if pkg-config --exists libvirt 2>/dev/null; then \
	  $(PIP) install -q 'libvirt-python>=9.0' && touch $@; \
	else echo "libvirt-dev not available: libvirt integration tests will be skipped"; fi

# The audit finds critical risks on the example host (that is the point of the demo) and would
# exit 1; --fail-on never keeps `make demo` green.  In cron/CI drop it: exit 1 is the alarm.
# The install is editable and these machines set PYTHONDONTWRITEBYTECODE=1, so without this every
# run would compile numaguard's ~50 modules again (~16 % of an audit); compileall writes the
# .pyc files anyway, and Python reuses them while the sources are unchanged.
bytecode: $(STAMP)
	@$(PY) -m compileall -q src

demo: $(STAMP) bytecode
	$(VENV)/bin/numaguard topology $(EXAMPLE)
	$(VENV)/bin/numaguard guests $(EXAMPLE)
	$(VENV)/bin/numaguard audit $(EXAMPLE) --fail-on never

test: lint $(STAMP) $(VENV)/.libvirt bytecode
	$(VENV)/bin/pytest -q
	@$(MAKE) --no-print-directory test-libvirtd-bounded
	@$(MAKE) --no-print-directory test-prometheus

# A real libvirtd with the QEMU driver (docs/libvirt.md): tests/support/libvirtd.py starts it
# when the tests need it (or uses one that already answers on qemu:///system) and stops the one
# it started by its PID.  libvirtd-deps installs its Debian packages when root + apt are there
# (the -sysv package keeps systemd out; python3-libvirt/-lxml: the non-root user's interpreter).
LIBVIRTD_PACKAGES := libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon-driver-qemu \
  libvirt-clients qemu-system-x86 libvirt-dev pkg-config python3-libvirt python3-lxml
LIBVIRTD_TESTS := tests/integration/test_libvirtd.py tests/integration/test_libvirtd_cli.py tests/integration/test_libvirtd_live.py tests/oracle/test_qemu_argv.py

libvirtd-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(LIBVIRTD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install --no-install-recommends$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

# Every real-libvirtd test (~25 s here, after the daemon's first start of ~8 s).
test-libvirtd: $(STAMP) $(VENV)/.libvirt libvirtd-deps
	NUMAGUARD_LIBVIRTD=1 $(VENV)/bin/pytest -q -rs -p no:cacheprovider $(LIBVIRTD_TESTS)

# The bounded form `make test` runs (7 tests, ~30 s), or the one line saying why it cannot.
test-libvirtd-bounded: $(STAMP) $(VENV)/.libvirt libvirtd-deps
	@why=$$($(PY) -c 'from tests.support.libvirtd import unavailable; print(unavailable() or "")'); \
	if [ -n "$$why" ]; then echo "real-libvirtd tests skipped: $$why"; \
	else NUMAGUARD_LIBVIRTD=bounded $(VENV)/bin/pytest -q -p no:cacheprovider $(LIBVIRTD_TESTS); fi

# The exporter with a real Prometheus, Alertmanager and node_exporter (~10 s; docs/exporter.md):
# Debian's packages installed when root + apt are there, else one line saying why it skips.
PROMETHEUS_PACKAGES := prometheus prometheus-alertmanager prometheus-node-exporter
test-prometheus: $(STAMP)
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(PROMETHEUS_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "apt-get install$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi
	@why=$$($(PY) -c 'from tests.exporter.promstack import unavailable; print(unavailable() or "")'); \
	if [ -n "$$why" ]; then echo "real-Prometheus test skipped: $$why"; \
	else NUMAGUARD_PROMETHEUS=1 timeout 300 $(VENV)/bin/pytest -q -p no:cacheprovider tests/exporter/test_prometheus.py tests/exporter/test_file_sd.py; fi

# numastat -p beside the exporter's scrape (bench/live_bench.py, bench/numastat_tree.py):
# Debian's numactl installed when root + apt are there; its row says why it did not run otherwise.
BENCH_PACKAGES := numactl
bench: $(STAMP) bytecode
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "apt-get install$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi
	$(PY) bench/run.py

# The planner against Nova's first fit and numad (bench/plan_bench.py, docs/plan-bench.md):
# re-plans up to 16 nodes x 533 guests and 60 near-full grid instances, ~3 min on 2 cores; the
# solver (highspy) comes with the test extra.  PLAN_BENCH_QUICK=1: a small subset.
PLAN_BENCH_QUICK ?= 0
bench-plan: $(STAMP) bytecode
	PLAN_BENCH_QUICK=$(PLAN_BENCH_QUICK) $(PY) bench/plan_bench.py

# The kernel oracle (slow, not part of `make test`): boots Debian's 6.1 kernel under qemu (TCG)
# with emulated NUMA nodes, plays tests/oracle/scenarios/*.toml, re-records
# tests/oracle/results/*.json and prints kernel vs simulator.  Needs root for apt-get (its
# Debian parts); ORACLE_ARGS="--no-apt n3" to skip apt or re-record one boot or scenario.
oracle: $(STAMP)
	$(PY) tests/oracle/run_oracle.py $(ORACLE_ARGS)

oracle-table: $(STAMP)
	$(PY) tests/oracle/run_oracle.py --table

# Real QEMU guests inside the same kernel (tests/oracle/QEMU.md): packs Debian's
# qemu-system-x86_64 into the oracle initramfs, runs tests/oracle/scenarios/qemu/*.toml (nested
# QEMU -S with libvirt-style prealloc'd memory backends), re-records tests/oracle/results/qemu/ and
# prints kernel vs simulator; then the chain (libvirt's own argv for tests/oracle/qemu/domains),
# each with THP=never and THP=always: four boots, ~5 min of qemu.  Repeated boots for the
# measured spread are recorded with --spread-boot N (QEMU.md).  ORACLE_QEMU_ARGS="--no-apt" to
# skip apt.
oracle-qemu: $(STAMP)
	$(PY) tests/oracle/run_qemu_oracle.py $(ORACLE_QEMU_ARGS)
	$(PY) tests/oracle/run_qemu_oracle.py --no-apt --thp always $(ORACLE_QEMU_ARGS)
	$(PY) tests/oracle/run_qemu_oracle.py --chain $(ORACLE_QEMU_ARGS)
	$(PY) tests/oracle/run_qemu_oracle.py --chain --no-apt --thp always $(ORACLE_QEMU_ARGS)

# The mutation fuzzer at scale (tests/hostile/fuzz.py): FUZZ_RUNS mutated inputs (default
# 20,000; the bounded run in `make test` takes 2,000) from seed FUZZ_SEED, every read-only command
# on each, two at a time; one minimised reproducer per distinct failure is saved in FUZZ_FINDINGS.
FUZZ_RUNS ?= 20000
FUZZ_SEED ?= 0
FUZZ_FINDINGS ?= /tmp/fuzz-findings
fuzz: $(STAMP)
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SEED=$(FUZZ_SEED) FUZZ_FINDINGS=$(FUZZ_FINDINGS) \
	  $(VENV)/bin/pytest -q -p no:cacheprovider tests/hostile/test_fuzz.py -k test_fuzz_bounded

# docs/rules.md is generated from the rule docstrings (a test checks it is current).
docs: $(STAMP)
	$(VENV)/bin/numaguard explain --all --format markdown > docs/rules.md.tmp
	mv docs/rules.md.tmp docs/rules.md

# The gates (config in pyproject.toml): ruff over the code and its tests, mypy over src/.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
