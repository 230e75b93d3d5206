"""VBD device slots: names, numbers, autodetect, clashes."""

import pytest

from hostagent.actions.vbd import choose_slot, device_name, disk_number
from hostagent.datamodel.errors import ApiError

PV = {"domain_type": "pv", "HVM_boot_policy": ""}
HVM = {"domain_type": "hvm", "HVM_boot_policy": "BIOS order"}
LEGACY_HVM = {"domain_type": "unspecified", "HVM_boot_policy": "BIOS order"}


def vbd(userdevice, device=""):
    return {"userdevice": userdevice, "device": device}


@pytest.mark.parametrize("name,number", [
    ("0", 0), ("3", 3), ("17", 17), ("xvda", 0), ("xvdb", 1), ("hdd", 3), ("sdc", 2),
    ("xvdz", 25), ("xvdaa", 26), ("xvdba", 52),
])
def test_disk_number(name, number):
    assert disk_number(name) == number


@pytest.mark.parametrize("name", ["", "autodetect", "-1", "xvd", "xvdA", "vda", "1a", "hda1"])
def test_not_a_slot(name):
    assert disk_number(name) is None


def test_device_name_round_trip():
    assert [device_name(n) for n in (0, 1, 25, 26, 27, 52)] == \
        ["xvda", "xvdb", "xvdz", "xvdaa", "xvdab", "xvdba"]
    assert all(disk_number(device_name(n)) == n for n in range(0, 800))


def test_autodetect_takes_the_lowest_free_slot():
    assert choose_slot("autodetect", PV, []) == "0"
    assert choose_slot("autodetect", PV, [vbd("0"), vbd("2")]) == "1"
    # a slot is taken by its userdevice or by the device name it was plugged as
    assert choose_slot("autodetect", PV, [vbd("0"), vbd("7", "xvdb")]) == "2"


def test_autodetect_on_hvm_has_four_slots():
    full = [vbd(str(n)) for n in range(4)]
    assert choose_slot("autodetect", HVM, full[:3]) == "3"
    for vm in (HVM, LEGACY_HVM):
        with pytest.raises(ApiError) as info:
            choose_slot("autodetect", vm, full)
        assert info.value.description == ["INVALID_DEVICE", "autodetect"]
    assert choose_slot("autodetect", PV, full) == "4"


def test_explicit_slots():
    assert choose_slot("5", PV, [vbd("0")]) == "5"
    with pytest.raises(ApiError) as info:
        choose_slot("xvda", PV, [vbd("0")])
    assert info.value.description == ["DEVICE_ALREADY_EXISTS", "xvda"]
    with pytest.raises(ApiError) as info:
        choose_slot("1", PV, [vbd("3", "hdb")])
    assert info.value.description == ["DEVICE_ALREADY_EXISTS", "1"]
    with pytest.raises(ApiError) as info:
        choose_slot("floppy", PV, [])
    assert info.value.description == ["INVALID_DEVICE", "floppy"]
