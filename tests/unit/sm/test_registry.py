"""sm.registry, the declared driver facts, and the error table they point into."""

import pytest

from sm import errorcodes
from sm.driver import CAPABILITIES, ConfigKey, Driver, DriverInfo
from sm.drivers.filesr import ExtDriver, FileDriver
from sm.drivers.isosr import IsoDriver
from sm.drivers.lvmsr import NEEDS_ACTIVATION, LvmDriver
from sm.drivers.nfssr import NfsDriver
from sm.errors import ConfigMissing, SMError, UnknownDriver
from sm.registry import Registry, default_registry
from sm.runner import RecordingRunner


def test_default_registry_lists_the_shipped_drivers():
    registry = default_registry(RecordingRunner())
    assert registry.types() == ["ext", "file", "iso", "lvm", "nfs"]
    assert registry.get("nfs") is NfsDriver
    assert registry.get("file") is FileDriver and registry.get("ext") is ExtDriver
    assert registry.get("iso") is IsoDriver and registry.get("lvm") is LvmDriver
    assert "lvm" in registry and "smb" not in registry


def test_unknown_type_is_sr_unknown_driver():
    with pytest.raises(UnknownDriver) as info:
        default_registry(RecordingRunner()).get("smb")
    assert info.value.code == "SR_UNKNOWN_DRIVER"
    assert info.value.params == ("smb",)
    assert isinstance(info.value, SMError)


def test_info_is_one_record_per_driver_sorted_by_type():
    infos = default_registry(RecordingRunner()).info()
    assert [i.type for i in infos] == ["ext", "file", "iso", "lvm", "nfs"]
    for info in infos:
        assert set(info.capabilities) <= CAPABILITIES
        assert info.features() == {c: 1 for c in info.capabilities}
        assert all(key.required for key in info.configuration[:1])
        assert info.name and info.description and info.vendor and info.version
        for key in info.configuration:
            errorcodes.lookup(key.error)  # every declared error exists in the table
    iso = next(i for i in infos if i.type == "iso")
    assert iso.content_type == "iso" and "VDI_CREATE" not in iso.capabilities
    nfs = next(i for i in infos if i.type == "nfs")
    assert nfs.config_descriptions().keys() == {"server", "serverpath", "nfsversion", "options"}
    assert "THIN_PROVISIONING" in nfs.capabilities


class _DmPresent(LvmDriver):
    dm_control = "/"  # exists everywhere; dmsetup's answer decides


def test_lvm_declares_attach_only_with_device_mapper():
    works = RecordingRunner().when(["dmsetup", "version"], stdout="Driver version: 4.48.0\n")
    fails = RecordingRunner().when(["dmsetup", "version"], rc=1,
                                   stderr="/dev/mapper/control: open failed: No such device\n")
    assert set(NEEDS_ACTIVATION) <= set(_DmPresent.host_info(works).capabilities)
    without = _DmPresent.host_info(fails).capabilities
    assert not set(NEEDS_ACTIVATION) & set(without)
    assert {"VDI_CREATE", "VDI_DELETE", "VDI_RESIZE"} <= set(without)
    assert Registry([_DmPresent], fails).info()[0].capabilities == without


def test_registry_rejects_two_drivers_of_one_type():
    with pytest.raises(ValueError):
        Registry([FileDriver, FileDriver])


def test_driver_info_rejects_unknown_capabilities_and_operations():
    common = dict(type="x", name="x", description="x", vendor="x", copyright="x", version="1",
                  required_api_version="1", configuration=())
    with pytest.raises(ValueError):
        DriverInfo(capabilities=("VDI_TELEPORT",), **common)
    with pytest.raises(ValueError):
        DriverInfo(capabilities=(), exclusive={"vol_teleport"}, **common)


def test_validate_config_raises_each_drivers_declared_error():
    cases = [
        (NfsDriver, {"serverpath": "/x"}, "ConfigServerMissing", 102),
        (NfsDriver, {"server": "filer"}, "ConfigServerPathMissing", 101),
        (FileDriver, {}, "ConfigLocationMissing", 94),
        (ExtDriver, {}, "ConfigDeviceMissing", 90),
        (LvmDriver, {"device": ""}, "ConfigDeviceMissing", 90),
        (IsoDriver, {}, "ISODconfMissingLocation", 220),
    ]
    for cls, config, name, number in cases:
        driver = cls("3b5fa5b1-8c6d-4bd2-9a4b-0d7d4f7f6a01", config, RecordingRunner(), "/nx")
        with pytest.raises(ConfigMissing) as info:
            driver.validate_config()
        assert info.value.name == name
        assert info.value.code == f"SR_BACKEND_FAILURE_{number}"
        assert info.value.params == ("", errorcodes.CODES[name][1], "")


def test_a_generic_missing_key_names_the_key():
    class Tiny(FileDriver):
        info = DriverInfo(type="tiny", name="t", description="t", vendor="v", copyright="c",
                          version="1", required_api_version="1", capabilities=(),
                          configuration=(ConfigKey("pool", "a pool", True),))
    with pytest.raises(ConfigMissing) as info:
        Tiny("u", {}, RecordingRunner(), "/nx").validate_config()
    assert info.value.code == "SR_BACKEND_FAILURE_115"
    assert "'pool'" in info.value.params[1] and "tiny" in info.value.params[1]


def test_error_table_numbers_are_unique_and_match_xapi_sm():
    numbers = [n for n, _ in errorcodes.CODES.values()]
    assert len(numbers) == len(set(numbers))
    # Facts from xapi-project/sm drivers/XE_SR_ERRORCODES.xml.
    assert errorcodes.CODES["ConfigServerMissing"][0] == 102
    assert errorcodes.CODES["ConfigServerPathMissing"][0] == 101
    assert errorcodes.CODES["NFSMount"][0] == 73
    assert errorcodes.CODES["NFSUnMount"][0] == 74
    assert errorcodes.CODES["LVMCreate"][0] == 50
    assert errorcodes.CODES["SRNoSpace"][0] == 44
    assert errorcodes.CODES["LockErr"][0] == 37
    assert errorcodes.xenapi_code("VDIUnavailable") == "SR_BACKEND_FAILURE_46"
    assert errorcodes.message("NFSMount", "x") == "NFS mount error [opterr=x]"


def test_every_driver_is_a_driver():
    registry = default_registry(RecordingRunner())
    for kind in registry.types():
        assert issubclass(registry.get(kind), Driver)
