"""An XVA import onto an `lvm` SR and an export from it (issue 12): the disks' bytes
cross between the file and LVM drivers unchanged, read back on the LVs by the sm driver."""

import urllib.parse

import pytest

from sm.drivers.lvmsr import LvmDriver
from sm.runner import Runner

from .storage_util import login, wait_task
from .test_storage_lvm import loop_device, pytestmark  # noqa: F401 - the fixture and the skips
from .transfer_support import curl_put, curl_to_file, devices, disk_bytes, make_vm

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")


def url(agent, path, **query):
    return agent.url.rstrip("/") + path + "?" + urllib.parse.urlencode(query)


def test_import_onto_lvm_and_back(agent, loop_device, tmp_path):  # noqa: F811
    s = login(agent)
    x = s.xenapi
    local = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, _, _ = make_vm(agent, x, local, name="to lvm")
    sr = x.SR.create(x.host.get_all()[0], {"device": loop_device}, "0", "lvm target", "", "lvm", "", False, {})
    lv = LvmDriver(x.SR.get_uuid(sr), {"device": loop_device}, Runner(), str(tmp_path / "st"))
    xva = str(tmp_path / "vm.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm, use_compression="zstd"), xva)
    status, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=sr), xva)
    assert status == 200
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    [on_lvm] = body.split()
    old_vbds, new_vbds = devices(x, vm)[0], devices(x, on_lvm)[0]
    for dev in ("0", "1"):
        vdi = new_vbds[dev]["VDI"]
        assert x.VDI.get_SR(vdi) == sr
        with lv.open_reader(x.VDI.get_uuid(vdi)) as reader:
            assert reader.read(0, reader.size) == disk_bytes(agent, x, old_vbds[dev]["VDI"])

    back = str(tmp_path / "back.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=on_lvm), back)
    _, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=local), back)
    assert wait_task(x, headers["task-id"]) == "success"
    [again] = body.split()
    for dev in ("0", "1"):
        assert disk_bytes(agent, x, devices(x, again)[0][dev]["VDI"]) == \
            disk_bytes(agent, x, old_vbds[dev]["VDI"])
    for vbd in x.VM.get_VBDs(on_lvm):
        if x.VBD.get_type(vbd) == "Disk":
            x.VDI.destroy(x.VBD.get_VDI(vbd))
    x.VM.destroy(on_lvm)
    for pbd in x.SR.get_PBDs(sr):
        x.PBD.unplug(pbd)
    x.SR.destroy(sr)
