"""The NBD-to-block bridge's own bookkeeping (connecting needs a dom0: tests/lab)."""

import pytest

from hostagent.backends.nbd_block import NbdBlockDevices, NbdBlockError


def test_an_owner_without_a_device_has_nothing_to_disconnect(tmp_path):
    devices = NbdBlockDevices(str(tmp_path))
    assert devices.device_of("vbd-1") is None
    devices.disconnect("vbd-1")  # nothing recorded: nothing run


def test_a_recorded_device_is_found_again_by_its_owner(tmp_path):
    devices = NbdBlockDevices(str(tmp_path))
    (tmp_path / "nbd").mkdir()
    (tmp_path / "nbd" / "vbd-2").write_text("/dev/nbd3\n")
    assert devices.device_of("vbd-2") == "/dev/nbd3"


@pytest.mark.parametrize("owner", ["", "../x", "a/b", ".hidden"])
def test_owners_that_are_no_file_name_are_refused(tmp_path, owner):
    with pytest.raises(NbdBlockError, match="bad attachment owner"):
        NbdBlockDevices(str(tmp_path)).device_of(owner)
