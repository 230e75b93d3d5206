"""XVA export and import driven by Xen Orchestra's own client (npm `xen-api`): its
getResource/putResource calls with tasks, as XO's backups use them (issue 12)."""

import json
import os
import subprocess

import pytest

from .storage_util import login
from .test_xen_orchestra import xen_api_modules as xo_modules_fixture
from .transfer_support import comparable, devices, disk_bytes, make_vm

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")
xen_api_modules = xo_modules_fixture  # the module-scoped fixture that installs xen-api
SCRIPT = os.path.join(os.path.dirname(__file__), "xo_transfer.mjs")


@pytest.mark.parametrize("compression", ["", "zstd"])
def test_xen_orchestra_exports_and_imports(agent, xen_api_modules, tmp_path, compression):
    modules = xen_api_modules
    x = login(agent).xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, _, _ = make_vm(agent, x, sr, name=f"xo {compression or 'plain'}")
    other = x.SR.create(x.host.get_all()[0], {"location": str(tmp_path / "sr2")}, "0", "xo target", "",
                        "file", "", False, {})
    out = str(tmp_path / "vm.xva")
    r = subprocess.run(["node", SCRIPT, modules, agent.url.rstrip("/"), "root", agent.password, vm, other,
                        out, compression], capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    [new] = result["imported"]
    assert result["exported"] == os.path.getsize(out) > 0
    assert comparable(x.VM.get_record(new)) == comparable(x.VM.get_record(vm))
    old_vbds, _ = devices(x, vm)
    new_vbds, _ = devices(x, new)
    for dev, rec in old_vbds.items():
        if rec["type"] == "Disk":
            assert x.VDI.get_SR(new_vbds[dev]["VDI"]) == other
            assert disk_bytes(agent, x, new_vbds[dev]["VDI"]) == disk_bytes(agent, x, rec["VDI"])
