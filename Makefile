# qemuctl — two commands do everything on a fresh Debian machine:
#   make demo   installs what is missing, builds, and runs the main job
#   make test   installs what is missing and runs the full suite (then each fuzzer for 60 s)
#   make fuzz   runs each libFuzzer target for FUZZ_SECONDS (300) seconds

SHELL := /bin/bash
SWIFT ?= swift
GUEST_DIR ?= $(CURDIR)/.cache/guest
export QEMUCTL_GUEST_DIR := $(GUEST_DIR)
# The Debian 12 cloud guest (cloud-init, qemu-guest-agent, openssh-server) of the cloud-image tests.
CLOUD_GUEST_DIR ?= $(CURDIR)/.cache/cloud-guest
export QEMUCTL_CLOUD_GUEST_DIR := $(CLOUD_GUEST_DIR)
# How long `make fuzz` and `make test` run each fuzz target (both run at once, one per core).
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 60

# Debian packages the build, the tests and the demo need.
# ovmf's firmware descriptor is what EFI firmware discovery reads (QEMU's docs/interop/firmware.json);
# xorriso makes (and the tests read back) cloud-init seed volumes; mmdebstrap and e2fsprogs build
# the cloud guest; openssh-client logs in to it. libvirt's daemon, QEMU driver and virsh run the real
# libvirt domains of RealLibvirtTests (a private session-mode libvirtd; no systemd or D-Bus needed).
APT_PACKAGES := qemu-system-x86 qemu-utils qemu-block-extra libyaml-dev busybox-static cpio kmod pkg-config groff-base ovmf \
	xorriso mmdebstrap e2fsprogs openssh-client libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
# Files whose presence shows a package is installed (same order as above).
CHECK_FILES := /usr/bin/qemu-system-x86_64 /usr/bin/qemu-img /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so /usr/include/yaml.h /bin/busybox /usr/bin/cpio /sbin/depmod /usr/bin/pkg-config /usr/bin/groff /usr/share/qemu/firmware/60-edk2-x86_64.json \
	/usr/bin/xorriso /usr/bin/mmdebstrap /sbin/mkfs.ext4 /usr/bin/ssh \
	/usr/sbin/libvirtd /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so /usr/bin/virsh

.PHONY: all deps build guest cloud-guest demo test fuzz fuzz-smoke bench release clean man

all: build

deps:
	@missing=""; set -- $(APT_PACKAGES); for f in $(CHECK_FILES); do \
	  [ -e "$$f" ] || missing="$$missing $$1"; shift; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "make deps: missing Debian packages:$$missing"; \
	    echo "  install them with: sudo apt-get install -y --no-install-recommends$$missing"; \
	    exit 1; \
	  fi; \
	fi
	@# A third-party QMP client for the busy-monitor tests: QEMU's own Python library (PyPI).
	@python3 -c 'import qemu.qmp' 2>/dev/null || python3 -m pip install --quiet qemu.qmp 2>/dev/null \
	  || { echo "make deps: install Python's qemu.qmp (pip install qemu.qmp)"; exit 1; }
	@# The schema tests validate manifests with an independent validator (Python's jsonschema).
	@python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install --quiet jsonschema 2>/dev/null \
	  || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-jsonschema >/dev/null; } \
	  || { echo "make deps: install Python's jsonschema (pip install jsonschema, or apt-get install python3-jsonschema)"; exit 1; }
	@# The schema corpus test reads YAML with PyYAML (an independent reader; check.py sets YAML 1.2 core tags).
	@python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml 2>/dev/null \
	  || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null; } \
	  || { echo "make deps: install PyYAML (pip install pyyaml, or apt-get install python3-yaml)"; exit 1; }

build: deps
	$(SWIFT) build

guest: deps
	@scripts/make-guest.sh "$(GUEST_DIR)"

# Debian 12 from deb.debian.org by mmdebstrap (needs root); built once, cached (scripts/README-cloud-guest.md).
cloud-guest: deps
	@scripts/make-cloud-guest.sh "$(CLOUD_GUEST_DIR)"

demo: build guest
	@scripts/demo.sh

test: deps guest cloud-guest
	$(SWIFT) build
	$(SWIFT) build --build-tests
	@# Two suites that take both cores for a minute run after the rest, so they do not starve the
	@# other tests' QEMUs and deadlines of CPU: the cloud guest's boots (a Debian userland under TCG,
	@# through the library and through qemuctl apply)
	@# and the library consumer (a swift build of this package as a dependency).
	@# At most 10 tests at once (Swift Testing's width limit): unbounded, the suite started ~60 TCG
	@# QEMUs together on two cores and tests timed out waiting for CPU, not for the product.
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=10 $(SWIFT) test --skip-build --skip 'CloudGuestTests|CloudGuestApplyTests|LibraryConsumerTests'
	$(SWIFT) test --skip-build --filter 'CloudGuestTests|CloudGuestApplyTests|LibraryConsumerTests'
	@$(MAKE) --no-print-directory fuzz-smoke

# libFuzzer targets (fuzz-manifest, fuzz-qmp-frames) with address and leak sanitizers, built
# in .build-fuzz; a crash, leak, timeout or OOM fails the run and leaves the input in fuzz-artifacts/.
fuzz: deps
	@SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-smoke: deps
	@SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS)

# Release builds: the Swift runtime, FoundationEssentials and the C libraries linked in, as a
# static position-independent executable (ASLR kept; nothing for ld.so to load or look up; the
# toolchain's lld links it, and a static PIE carries no rpath). A short-lived command like
# `qemuctl diff` then starts in ~2 ms of CPU instead of ~21 ms with shared libraries (3.5 ms as a
# dynamically linked static-stdlib binary). glibc's user-database lookups (getpwuid, only when
# HOME is unset) load the same glibc's NSS modules at run time, so build where it runs.
RELEASE_FLAGS := -c release --static-swift-stdlib --disable-local-rpath \
	-Xswiftc -use-ld=lld -Xswiftc -Xclang-linker -Xswiftc -static-pie

# The release qemuctl, in .build/release/qemuctl.
release: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product qemuctl

bench: deps guest
	@for p in qemuctl qmp-rtt launch yaml-bench apply-bench scale-bench controller-bench; do \
	  $(SWIFT) build $(RELEASE_FLAGS) --product $$p || exit 1; done
	.build/release/qmp-rtt
	.build/release/launch
	.build/release/yaml-bench
	.build/release/yaml-bench command
	.build/release/apply-bench
	.build/release/scale-bench
	.build/release/controller-bench

# The manual page qemuctl.1: swift-argument-parser's generate-manual plugin (offline: the
# package is already checked out), or `qemuctl __man` when the plugin cannot run.
man: build
	@if $(SWIFT) package --disable-sandbox plugin generate-manual --configuration debug >/dev/null 2>&1 \
	    && cp .build/plugins/GenerateManual/outputs/QemuCtlCLI/qemuctl.1 qemuctl.1; then \
	  echo "qemuctl.1 written (generate-manual plugin); read it with: man -l qemuctl.1"; \
	else \
	  .build/debug/qemuctl __man > qemuctl.1 && echo "qemuctl.1 written (qemuctl __man); read it with: man -l qemuctl.1"; \
	fi

clean:
	rm -rf .build .build-fuzz .cache fuzz-artifacts
