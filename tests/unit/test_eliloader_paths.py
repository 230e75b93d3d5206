"""The installer cache only ever touches direct children of boot_dir: a VM uuid of `/`,
`..` or `../x` (say from a restored archive) names no directory to fill or remove."""

import types

import pytest

from hostagent.actions import eliloader
from hostagent.datamodel.errors import ApiError


def ctx_with(boot_dir):
    return types.SimpleNamespace(ports=types.SimpleNamespace(boot_dir=str(boot_dir)))


@pytest.fixture
def dirs(tmp_path):
    boot, victim = tmp_path / "boot", tmp_path / "victim"
    (boot / "0d6c2b32-9c55-4b4a-9d0b-3c2b2f6d1a11").mkdir(parents=True)
    victim.mkdir()
    (victim / "keep").write_text("x")
    return boot, victim


@pytest.mark.parametrize("uuid", ["../victim", "..", ".", "", "a/../../victim"])
def test_forget_leaves_everything_outside_boot_dir(dirs, uuid):
    boot, victim = dirs
    eliloader.forget(ctx_with(boot), uuid)
    assert (victim / "keep").exists() and boot.exists()


def test_forget_removes_the_vms_own_directory(dirs):
    boot, _ = dirs
    eliloader.forget(ctx_with(boot), "0d6c2b32-9c55-4b4a-9d0b-3c2b2f6d1a11")
    assert list(boot.iterdir()) == []


@pytest.mark.parametrize("uuid", ["../victim", "/", "..", ""])
def test_no_boot_directory_outside_boot_dir(dirs, uuid):
    boot, _ = dirs
    with pytest.raises(ApiError) as err:
        eliloader._directory(ctx_with(boot), {"uuid": uuid})
    assert err.value.code == "INTERNAL_ERROR"


def test_the_boot_directory_of_a_vm(dirs):
    boot, _ = dirs
    assert eliloader._directory(ctx_with(boot), {"uuid": "abc"}) == str(boot / "abc")
