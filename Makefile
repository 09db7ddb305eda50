# The emulated Azure Integrated HSM platform. `make run` and `make test` are the two entry points;
# every target depends on `deps`, so both work on a fresh Debian 12 machine.

PYTHON ?= python3
BUILD  := build
VENV   := $(BUILD)/venv
PY     := $(VENV)/bin/python
QEMU   := $(BUILD)/qemu/qemu-system-x86_64
# the guest workload `make run` boots (e.g. make run WORKLOAD=confidential: 1 vCPU, which reaches
# the signed result sooner under TCG on a 2-core machine, docs/confidential.md)
WORKLOAD ?= default
export QEMU_SRC

.PHONY: all deps qemu firmware images test bench reliability run clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    build everything and boot an emulated V7 server end-to-end (WORKLOAD=confidential: attested key release)"
	@echo "make test   build everything and run the test suite"
	@echo "make bench  run the benchmarks (prints ratios against anchors measured in the same run)"
	@echo "make reliability  run the hostile-input and fault tests and write their counts to docs/reliability.md"
	@echo "make deps   install Debian packages and the Python environment ($(VENV))"
	@echo "make qemu   build $(QEMU) (QEMU_SRC=DIR to use your own QEMU 10.0 tree)"
	@echo "make firmware  build the HSM firmware stage images ($(BUILD)/images/firmware)"
	@echo "make images build the guest kernel, initramfs and root filesystem ($(BUILD)/images)"
	@echo "make clean  remove $(BUILD)/"

all: qemu firmware images

deps: $(BUILD)/.deps
$(BUILD)/.deps: scripts/deps.sh scripts/build-requirements.txt pyproject.toml
	@mkdir -p $(BUILD)
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/deps.sh
	@touch $@

qemu: deps
	VENV=$(abspath $(VENV)) scripts/build-qemu.sh

firmware: deps
	$(MAKE) -C images/firmware PY=$(abspath $(PY))

images: deps
	$(PY) images/build.py

test: deps qemu firmware images
	$(VENV)/bin/pytest -ra

bench: deps qemu firmware images
	@for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) -m $$(echo $${b%.py} | tr / .) || exit 1; done

# The tests that try hostile inputs and faults, and the table of what they tried (docs/reliability.md).
RELIABILITY_TESTS := tests/security tests/backend/test_server.py tests/backend/ddi/test_ddi_fuzz.py \
	tests/backend/ddi/test_ddi_limits.py tests/backend/ddi/test_ddi_crash_loop.py tests/tools/test_trace_secrets.py \
	tests/device/test_fuzz.py tests/device/test_malformed.py
reliability: deps qemu firmware images
	$(VENV)/bin/pytest -q $(RELIABILITY_TESTS)
	$(PY) scripts/reliability-doc.py $(BUILD)/reliability.md docs/reliability.md

run: deps qemu firmware images
	$(VENV)/bin/pyhsm run --workload $(WORKLOAD) $(if $(filter confidential%,$(WORKLOAD)),--cpus 1)

clean:
	rm -rf $(BUILD)
