"""Device discovery against this machine's sysfs and udev."""

import os

from hostagent.backends.udev import UNKNOWN, nic_facts


def test_physical_follows_sysfs_device_links():
    for name in os.listdir("/sys/class/net"):
        facts = nic_facts(name)
        assert set(facts) == set(UNKNOWN)
        has_device = os.path.exists(f"/sys/class/net/{name}/device")
        assert facts["physical"] == has_device, name
        if facts["pci_bus_path"]:
            assert len(facts["vendor_id"]) == 4, facts


def test_loopback_is_virtual_and_an_unknown_link_has_no_facts():
    assert nic_facts("lo")["physical"] is False
    assert nic_facts("no-such-link0") == UNKNOWN
