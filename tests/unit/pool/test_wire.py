"""Port calls between members: the allow-list and the JSON-safe encoding (hostagent/pool/wire.py),
and the proxies that use them (hostagent/pool/remote.py)."""

import asyncio
import json

import pytest

from hostagent.backends.domain import Boot, Disk, Domain, Nic
from hostagent.backends.hypervisor import (
    Capabilities,
    DomainState,
    NeedsHVM,
    NoSuchDomain,
)
from hostagent.backends.storage import Attached, StorageError
from hostagent.datamodel.errors import ApiError
from hostagent.pool import remote, wire

SR_UUID = "0b8f8b0e-5f3a-4c59-9d1e-3f2a6f1b2c3d"


def travel(value):
    """A value through encode, JSON text and decode, as between two agents."""
    return wire.decode(json.loads(json.dumps(wire.encode(value))))


def test_a_domain_description_travels_whole():
    d = Domain("u", "vm", 2 << 30, 1 << 30, 4, 2, boot=Boot(kind="pv", kernel="/k", cmdline="ro"),
               disks=(Disk(0, "xvda", source="/a.vhd", format="vpc", bootable=True),),
               nics=(Nic(0, "00:16:3e:00:00:01", "xenbr0", mtu=9000),), vcpu_cap=50, extra={"k": "v"})
    back = travel(d)
    assert back == d and isinstance(back.disks, tuple) and isinstance(back.disks[0], Disk)


def test_results_travel_as_their_types():
    caps = Capabilities("TEST", False, False, True, False, False, True, True)
    state = DomainState("u", "vm", "running", 3, 1 << 30, 2, 123)
    att = Attached("nbd", "/run/x.sock", "raw", "nbd+unix:///?socket=/run/x.sock", "sr", "vdi", "vbd", True)
    assert travel(caps) == caps and travel(state) == state and travel(att) == att
    assert travel([state, None]) == [state, None]
    assert travel({"a": (1, 2)}) == {"a": (1, 2)}


def test_what_cannot_travel_is_refused():
    for value in (object(), {1: "a"}, {"x", "y"}, b"bytes"):
        with pytest.raises(wire.WireError):
            wire.encode(value)
    for value in ({"~": "Popen", "v": {}}, {"~": "Disk", "v": {"userdevice": 0, "target": "a", "evil": 1}},
                  {"~": "Disk", "v": {}}, {"not": "tagged"}, {"~": "tuple", "v": "x"}):
        with pytest.raises(wire.WireError):
            wire.decode(value)


def test_only_allowed_port_methods_are_calls():
    assert wire.parse(wire.request("domains", "destroy", ["u"])) == ("domains", "destroy", ["u"])
    for port, op in (("domains", "save"), ("domains", "restore"), ("domains", "run"), ("domains", "_work"),
                     ("storage", "call"), ("storage", "vol_destroy"), ("links", "attach"), ("domains", None)):
        with pytest.raises(wire.WireError):
            wire.request(port, op, [])
        with pytest.raises(wire.WireError):
            wire.parse({"port": port, "op": op, "args": []})
    with pytest.raises(wire.WireError):
        wire.parse({"port": "domains", "op": "state"})  # no args


def test_port_exceptions_come_back_as_themselves():
    back = wire.decode_error(json.loads(json.dumps(wire.encode_error(NoSuchDomain("gone", 42)))))
    assert type(back) is NoSuchDomain and str(back) == "gone" and back.code == 42
    assert type(wire.decode_error(wire.encode_error(NeedsHVM("pv on kvm", 3)))) is NeedsHVM
    s = wire.decode_error(wire.encode_error(StorageError("SR_BACKEND_FAILURE_47", ["a", "b"])))
    assert type(s) is StorageError and (s.code, s.params) == ("SR_BACKEND_FAILURE_47", ("a", "b"))
    with pytest.raises(wire.WireError):
        wire.encode_error(RuntimeError("not a port's"))
    with pytest.raises(wire.WireError):
        wire.decode_error({"class": "SystemExit", "message": "", "code": 0})


def test_proxies_send_allowed_calls_and_refuse_the_rest_before_calling():
    sent = []

    async def caller(port, op, args):
        sent.append(wire.request(port, op, args))  # what would go on the wire
        return "done"

    domains, storage = remote.RemoteDomains(caller), remote.RemoteStorage(caller)

    async def run():
        assert await domains.call("destroy", "u") == "done"
        drv = storage.driver("file", SR_UUID, {"path": "/srv"})
        assert await storage.attach(drv, "vdi", True, "vbd") == "done"
        assert await storage.call(drv, "vol_destroy", "vdi") == "done"  # the SR's own work
        assert await storage.scratch("size", wire.ScratchFile("u.img")) == "done"
        # vol_copy_to moves data between two drivers, perhaps of two hosts: not forwarded
        for refused in (domains.run(print), storage.call(drv, "vol_copy_to", "vdi", drv, "new", None)):
            with pytest.raises(ApiError) as e:
                await refused
            assert e.value.description[0] == "OPERATION_NOT_ALLOWED"
        with pytest.raises(wire.WireError):  # a path never travels: only a scratch file's name
            await domains.call("save", "u", "/tmp/img")
        with pytest.raises(ApiError):
            storage.open_io(drv, "vdi", True)

    asyncio.run(run())
    assert [(s["port"], s["op"]) for s in sent] == [("domains", "destroy"), ("storage", "attach"),
                                                    ("sr", "vol_destroy"), ("scratch", "size")]
    assert wire.decode(sent[1]["args"][0]) == wire.DriverRef("file", SR_UUID, {"path": "/srv"})


def test_files_travel_only_as_scratch_file_names():
    img = wire.ScratchFile("0b8e-uuid.img")
    body = wire.request("domains", "save", ["u", img])
    assert wire.parse(body) == ("domains", "save", ["u", img])
    for name in ("../x.img", "/tmp/x.img", "x", ".img", "a/b.img", ""):
        with pytest.raises(wire.WireError):
            wire.ScratchFile(name)
        with pytest.raises(wire.WireError):  # nor decoded from a forged body
            wire.decode({"~": "ScratchFile", "v": {"name": name}})
    forged = {"port": "domains", "op": "restore", "args": ["u", "/etc/shadow", None]}
    with pytest.raises(wire.WireError):
        wire.parse(forged)
    drv = wire.DriverRef("file", SR_UUID, {})
    with pytest.raises(wire.WireError):  # a driver call names its driver first
        wire.parse({"port": "sr", "op": "stat", "args": []})
    assert wire.parse(wire.request("sr", "vol_dump_to", [drv, "vol", img, 10]))[2] == [drv, "vol", img, 10]
    with pytest.raises(wire.WireError):
        wire.request("sr", "vol_fill_from", [drv, "vol", "/root/image"])


def test_a_driver_names_its_sr_by_uuid_and_guest_calls_stay_in_the_guests_keys():
    with pytest.raises(wire.WireError):  # the uuid names directories on the member
        wire.DriverRef("file", "../../etc", {})
    ok = wire.request("guest", "write", (5, {"vm-data/a": "1", "vm-data": ""}))
    assert wire.parse(ok)[0] == "guest"
    for bad in (("write", (0, {"vm-data/a": "1"})),  # dom0
                ("write", (True, {"vm-data/a": "1"})),
                ("write", (5, {"control/shutdown": "poweroff"})),
                ("read_tree", (5, "/local/domain/0")),
                ("facts", ("5", {}, []))):
        with pytest.raises(wire.WireError):
            wire.request("guest", *bad)
        forged = {"port": "guest", "op": bad[0], "args": [wire.encode(a) for a in bad[1]]}
        with pytest.raises(wire.WireError):  # and a member refuses it however it is sent
            wire.parse(forged)
