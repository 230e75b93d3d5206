"""The lab's image recipe (lab/build.py) against the installer it prepares dom0 for.

The image carries the agent's dependencies in scripts/install-dom0's venv, so that the
installer in the booted dom0 only installs the agent's wheel (docs/lab.md); these tests hold the
two to the same path and the recipe's hash to the dependency set. The installer's run itself is
proved by the lab (make lab-test), whose install log says whether the venv was reused.
"""

import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))  # lab/build.py imports lab/initramfs.py
_spec = importlib.util.spec_from_file_location("lab_build", ROOT / "lab/build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "CACHE", tmp_path)
    (tmp_path / "id_ed25519.pub").write_text("ssh-ed25519 AAAA test\n")
    return tmp_path


def test_image_venv_is_the_installers_prefix():
    text = (ROOT / "scripts/install-dom0").read_text()
    prefix = re.search(r"^PREFIX=(\S+)$", text, re.MULTILINE).group(1)
    assert prefix == build.AGENT_VENV


def test_installer_reuses_a_venv_and_still_makes_one():
    text = (ROOT / "scripts/install-dom0").read_text()
    assert 'if [ -x "$PREFIX/bin/python" ]; then' in text
    assert 'python3 -m venv "$PREFIX"' in text


def test_recipe_follows_the_dependency_versions(cache):
    deps = [Path("twisted-26.10.0-py3-none-any.whl"), Path("pyte-0.8.2-py3-none-any.whl")]
    digest, parts = build.recipe(deps)
    assert parts["wheels"] == sorted(w.name for w in deps)
    assert build.recipe(list(reversed(deps)))[0] == digest
    newer = [Path("twisted-26.11.0-py3-none-any.whl"), deps[1]]
    assert build.recipe(newer)[0] != digest
    assert build.recipe(deps[:1])[0] != digest


def test_recipe_follows_the_key(cache):
    deps = [Path("pyte-0.8.2-py3-none-any.whl")]
    digest, _ = build.recipe(deps)
    (cache / "id_ed25519.pub").write_text("ssh-ed25519 BBBB other\n")
    assert build.recipe(deps)[0] != digest


def test_prune_keeps_the_newest_images(cache, monkeypatch):
    monkeypatch.setattr(build, "MAX_IMAGES", 2)
    now = time.time()
    for n, age in enumerate((10, 20, 30, 3 * 86400)):
        d = cache / f"dom0-{n}"
        d.mkdir()
        (d / "last-used").touch()
        os.utime(d / "last-used", (now - age, now - age))
    (cache / "dom0-x.tmp").mkdir()
    keep = cache / "dom0-2"
    build.prune(keep)
    assert sorted(p.name for p in cache.glob("dom0-*")) == ["dom0-0", "dom0-2"]


def test_initramfs_init_mounts_the_root_and_hands_over():
    init = build.initramfs.INIT
    assert init.startswith("#!/bin/sh\n")
    assert "mount -t ext4 -o rw /dev/vda /root" in init
    assert init.rstrip().endswith("exec switch_root /root /sbin/init")
    for applet in ("mount", "insmod", "switch_root", "sleep", "cat"):
        assert applet in build.initramfs.APPLETS
