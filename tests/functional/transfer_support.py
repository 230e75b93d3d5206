"""Helpers for the import/export tests: a VM with two disks (one a snapshot chain) whose
bytes are written behind the agent's back (sm.vhd), curl as the HTTP client, and the
comparisons (records without identities, disks read back by pyvhdi)."""

import os
import random
import subprocess

from .storage_util import NULL, MiB, read_pyvhdi, vdi_record, vhd_path, vm_record, write

DISK_A = 6 * MiB + 512 * 7  # not a whole number of chunks: the last chunk is short
DISK_B = 5 * MiB


def curl_to_file(url: str, path: str, *extra, timeout=120):
    """GET url into path; (HTTP status, headers dict)."""
    r = subprocess.run(["curl", "-sS", "-o", path, "-D", "-", *extra, url], capture_output=True,
                       timeout=timeout, check=True)
    return _status_headers(r.stdout)


def curl_put(url: str, path: str, *extra, timeout=120):
    """PUT the file at path; (HTTP status, headers dict, body text)."""
    out = path + ".response"
    r = subprocess.run(["curl", "-sS", "-T", path, "-o", out, "-D", "-", *extra, url],
                       capture_output=True, timeout=timeout, check=False)
    status, headers = _status_headers(r.stdout)
    body = ""
    if os.path.exists(out):
        with open(out, "rb") as f:
            body = f.read().decode()
    return status, headers, body.strip()


def _status_headers(raw: bytes):
    blocks = [b for b in raw.decode("latin-1").split("\r\n\r\n") if b.strip()]
    last = [b for b in blocks if not b.startswith("HTTP/1.1 100")][-1].split("\r\n")
    headers = {}
    for line in last[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(last[0].split()[1]), headers


def pattern(size: int, seed: int, fill: float = 0.5) -> list:
    """Writes covering about `fill` of a disk of `size` bytes: (offset, data) pairs."""
    rnd = random.Random(seed)
    writes = []
    for offset in range(0, size - 64 * 1024, 256 * 1024):
        if rnd.random() < fill:
            writes.append((offset, rnd.randbytes(64 * 1024)))
    writes.append((size - 512, b"\xee" * 512))  # the last sector, in the short last chunk
    return writes


def make_vm(agent, x, sr, name="exported"):
    """A Halted VM with disk A (plain) and disk B (a snapshot chain: data under the
    snapshot and data written after it), a CD drive and a VIF; returns (vm, [vdi A, vdi B])."""
    vm = x.VM.create(vm_record(name))
    sr_uuid = x.SR.get_uuid(sr)
    vdis = []
    for size, seed, name_ in ((DISK_A, 1, "disk A"), (DISK_B, 2, "disk B")):
        vdi = x.VDI.create(vdi_record(sr, size, name_))
        write(vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(vdi)), pattern(size, seed))
        vdis.append(vdi)
    snap = x.VDI.snapshot(vdis[1], {})
    leaf = vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(vdis[1]))
    write(leaf, [(MiB, b"\x5a" * 70000), (3 * MiB + 4096, b"\xa5" * 4096)])
    for n, vdi in enumerate(vdis):
        x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": str(n), "bootable": n == 0, "mode": "RW",
                      "type": "Disk", "unpluggable": True, "empty": False, "other_config": {"owner": "true"},
                      "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VBD.create({"VM": vm, "VDI": NULL, "userdevice": "3", "bootable": False, "mode": "RO",
                  "type": "CD", "unpluggable": True, "empty": True, "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    nets = [n for n, r in x.network.get_all_records().items() if r["name_label"] == "transfer net"]
    net = nets[0] if nets else x.network.create({"name_label": "transfer net", "name_description": "",
                                                 "MTU": "1500", "other_config": {}, "bridge": ""})
    x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                  "other_config": {"k": "v"}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    return vm, vdis, snap


def disk_bytes(agent, x, vdi) -> bytes:
    """A VDI's contents, read by libvhdi through its whole chain."""
    sr = x.VDI.get_SR(vdi)
    path = vhd_path(agent.state_dir, x.SR.get_uuid(sr), x.VDI.get_uuid(vdi),
                    location=x.PBD.get_device_config(x.SR.get_PBDs(sr)[0]).get("location"))
    return read_pyvhdi(path, int(x.VDI.get_virtual_size(vdi)))


IDENTITY = {"uuid", "MAC", "VM", "VDI", "VBDs", "VIFs", "metrics", "SR", "network", "allowed_operations",
            "current_operations", "location", "snapshots", "snapshot_of", "other_config", "device",
            "physical_utilisation", "sm_config", "guest_metrics", "consoles", "crash_dumps",
            "is_a_snapshot", "snapshot_time", "parent", "children", "domid", "resident_on",
            "last_boot_CPU_flags", "bios_strings", "generation_id", "is_tools_sr",
            "vdi_uuid"}


def comparable(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in IDENTITY}


def devices(x, vm):
    """(VBD records by userdevice, VIF records by device) of a VM."""
    vbds = {r["userdevice"]: r for r in (x.VBD.get_record(v) for v in x.VM.get_VBDs(vm))}
    vifs = {r["device"]: r for r in (x.VIF.get_record(v) for v in x.VM.get_VIFs(vm))}
    return vbds, vifs
