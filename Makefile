# hostagent developer entry points. `make run` and `make test` are all a new machine needs:
# they install what is missing (system packages, then .venv) and are instant the second time.

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   ?= .venv
STAMPS := build/stamps
ARGS ?=
PYTEST_ARGS ?=

# Debian 12 packages the build, the agent and its tests need:
#   python3 python3-venv       the interpreter and its venv module (Debian splits ensurepip out)
#   python3-dev gcc pkg-config libvirt-dev
#                              libvirt-python is a source package on PyPI, compiled against the
#                              system's libvirt; libvirt-dev pulls in libvirt0, which itself holds
#                              the test driver (test:///default): no libvirt daemon is needed
#   libpam0g-dev               PAM for python-pam (--auth pam)
#   lvm2                       the LVM SR driver and its tests on loop devices
#   qemu-utils                 qemu-img: image creation and conversion, an independent VHD check
#   nodejs npm                 Xen Orchestra's xen-api client in the functional tests
#   util-linux iproute2 procps losetup, mount, unshare, nsenter; ip netns and veth; ps, sysctl
#   libvirt-clients libxml2-utils
#                              virt-xml-validate (its xmllint is in libxml2-utils): rendered
#                              domain XML checked against libvirt's RNG schemas
#   nbdkit nbdkit-plugin-python
#                              the VDI datapath: VHD chains served over NBD (sm/datapath)
#   libnbd-bin                 nbdinfo: what the datapath's NBD servers offer, in the tests
#   libvirt-daemon-system qemu-system-x86
#                              libvirtd, virtlogd and qemu for the tests that boot real guests
#                              under qemu:///system (tests/kvm/libvirtd.py starts and stops them)
#   debootstrap openssh-client the Xen lab (lab/, docs/lab.md): dom0's image, ssh into dom0
#   nftables                   nft: VIF locking_mode filters as bridge-family rules
#                              (hostagent/backends/nftables.py)
#   nfs-common                 mount.nfs, which `mount -t nfs` needs: NFS SRs and nfs://
#                              install repositories (hostagent doctor warns when absent)
#   etcd-server etcd-client    etcd 3.4 (and etcdctl): a pool's database on its first members
#                              (hostagent/backends/etcd_member.py runs it; its tests start members)
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libvirt-dev libpam0g-dev \
                lvm2 qemu-utils nodejs npm util-linux iproute2 procps libvirt-clients libxml2-utils \
                nbdkit nbdkit-plugin-python libnbd-bin libvirt-daemon-system qemu-system-x86 nftables \
                nfs-common etcd-server etcd-client

.PHONY: all deps venv run test bench docs clean lab-build lab-boot lab-test lab-smoke

all: test

deps: $(STAMPS)/deps

# A package counts as present when dpkg has it installed; npm also when an `npm` command exists
# (NodeSource's nodejs ships npm inside and conflicts with Debian's npm package).
$(STAMPS)/deps: Makefile
	@set -euo pipefail; \
	if ! command -v dpkg-query >/dev/null; then \
	    echo "deps: not a Debian system; make sure these (or their equivalents) are installed: $(APT_PACKAGES)" >&2; \
	    mkdir -p $(STAMPS); touch $@; exit 0; \
	fi; \
	missing=""; \
	for p in $(APT_PACKAGES); do \
	    if [ "$$p" = npm ] && command -v npm >/dev/null; then continue; fi; \
	    if [ "$$(dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null)" = installed ]; then continue; fi; \
	    missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "deps: missing Debian packages:$$missing" >&2; \
	        echo "deps: install them as root:  apt-get install$$missing   (then re-run make)" >&2; \
	        exit 1; \
	    fi; \
	    echo "deps: installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q; \
	    apt-get install -y -q --no-install-recommends $$missing; \
	fi; \
	mkdir -p $(STAMPS); touch $@

venv: deps $(VENV)/.installed

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hostagent needs Python >= 3.11; this is " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Re-installs when the package metadata changes; deps is order-only so that editing this
# Makefile does not reinstall the venv.
$(VENV)/.installed: setup.cfg pyproject.toml | $(STAMPS)/deps $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

run: venv
	exec $(VENV)/bin/hostagent serve $(ARGS)

# pytest's own exit code is the result: 5 ("no tests collected") fails too.
test: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Every bench/*.py except helpers named _*.py; all run, the target fails if any failed.
bench: venv
	@shopt -s nullglob; failed=""; ran=0; \
	for f in bench/*.py; do \
	    case "$$(basename "$$f")" in _*) continue;; esac; \
	    echo "== $$f"; ran=$$((ran + 1)); \
	    $(VENV)/bin/python "$$f" || failed="$$failed $$f"; \
	done; \
	if [ "$$ran" = 0 ]; then echo "bench: no bench/*.py to run yet"; fi; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed" >&2; exit 1; fi

# The Xen lab (docs/lab.md): a Debian dom0 with Xen under QEMU. lab-build makes (or reuses) the
# image, lab-boot boots it to ssh and powers it off, lab-test does both, installs the agent with
# scripts/install-dom0, runs the tests marked `xen` (tests/lab) against it, keeps the logs in
# build/lab/artefacts and prints the total time and peak memory; it prints "SKIPPED: reason" and
# exits 0 where the machine cannot run the lab. lab-smoke is its old name. Images are cached
# for every checkout in /var/cache/hostagent-lab (HOSTAGENT_LAB_CACHE=dir to move it); the
# image's venv has the agent's dependencies, whose wheels .venv's pip resolves.
lab-build: deps venv
	$(PYTHON) lab/build.py

lab-boot: lab-build
	$(PYTHON) lab/boot.py $(ARGS)

lab-test: venv
	$(PYTHON) lab/run.py $(PYTEST_ARGS)

lab-smoke: lab-test

docs: venv
	$(VENV)/bin/python -m hostagent.docgen
	$(VENV)/bin/python -m hostagent.xe.gentable

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
