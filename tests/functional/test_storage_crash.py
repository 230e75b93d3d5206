"""SIGKILL in the middle of VDI.clone, VDI.snapshot and VDI.copy: after a restart
storage and records agree (every VDI record has its file, every file its
record, no temporary file, no intent left) and the original disk reads back
unchanged.

Clone and snapshot take milliseconds, so the agent runs with the storage
adapter's test hook HOSTAGENT_FAULT_DELAY_VOL_CLONE / _VOL_SNAPSHOT, which holds
the call after the driver finished: the kill lands between the storage change
and its records, the window the intent log exists for. A copy of a large disk
is slow by itself: the kill lands while the new file is being written. A last
test kills a stream of clones and snapshots at random moments.
"""

import http.client
import json
import os
import random
import sqlite3
import threading
import time
import xmlrpc.client

import pytest

from sm import vhd

from .agent import AgentProcess
from tests.support import wait_for
from .storage_util import MiB, NULL, apply, login, read_pyvhdi, vdi_record, vhd_path, write

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")

SIZE = 32 * MiB


def intents(state_dir):
    with sqlite3.connect(f"file:{os.path.join(state_dir, 'state.db')}?mode=ro", uri=True) as db:
        return db.execute("SELECT id, data FROM intents").fetchall()


def local_sr(x):
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    return sr, x.SR.get_uuid(sr)


def vhd_files(directory):
    return {n[:-4] for n in os.listdir(directory) if n.endswith(".vhd")}


def assert_consistent(x, state_dir, sr, directory):
    """Records of SR `sr` and the files in `directory` agree; nothing half-made is left."""
    names = os.listdir(directory)
    assert [n for n in names if not n.endswith(".vhd")] == []  # no .tmp-*, no .branch-* journal
    records = {r["location"]: r for r in x.VDI.get_all_records().values() if r["SR"] == sr}
    assert set(records) == vhd_files(directory)
    for location, rec in records.items():
        chain = vhd.chain(os.path.join(directory, location + ".vhd"))  # every parent is there
        assert rec["managed"] is (not any(r["sm_config"].get("vhd-parent") == location
                                          for r in records.values()))
        assert len(chain) >= 1
    assert intents(state_dir) == []


def make_disk(x, sr, path_for):
    vdi = x.VDI.create(vdi_record(sr, SIZE, "precious"))
    data = [(o, bytes([o // MiB % 251 + 1]) * 8192) for o in range(0, SIZE, MiB)]
    path = path_for(vdi)
    write(path, data)
    model = bytearray(SIZE)
    apply(model, data)
    return vdi, bytes(model)


@pytest.mark.parametrize("op", ["clone", "snapshot"])
def test_kill_during_clone_or_snapshot_rolls_back(agents, op):
    agent = agents(**{f"HOSTAGENT_FAULT_DELAY_VOL_{op.upper()}": "60"})
    x = login(agent).xenapi
    sr, sr_uuid = local_sr(x)
    directory = os.path.join(agent.state_dir, "sr", sr_uuid)
    vdi, model = make_disk(x, sr, lambda v: vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(v)))
    uuid = x.VDI.get_uuid(vdi)
    before = vhd_files(directory)
    getattr(x.Async.VDI, op)(vdi, {})
    # the driver's work is done when the base and the new leaf are there; then the hook holds
    wait_for(lambda: len(vhd_files(directory)) == len(before) + 2, 20.0, pause=0.01, what="the branch's files")
    [(_, pending)] = intents(agent.state_dir)
    agent.kill()
    pending = json.loads(pending)
    assert pending["op"] == f"vdi_{op}" and pending["of"] == uuid and pending["sr"] == sr_uuid
    [new] = pending["new"]
    assert new in vhd_files(directory)  # made by the driver, not yet recorded

    agent = agents()
    x = login(agent).xenapi
    assert new not in vhd_files(directory)  # rolled back
    assert_consistent(x, agent.state_dir, sr, directory)
    assert x.VDI.get_by_uuid(uuid) == vdi and x.VDI.get_snapshots(vdi) == []
    assert read_pyvhdi(os.path.join(directory, uuid + ".vhd"), SIZE) == model
    assert x.VDI.get_allowed_operations(vdi) and x.VDI.get_current_operations(vdi) == {}
    x.VDI.snapshot(vdi, {})  # and the disk works as before
    assert_consistent(x, agent.state_dir, sr, directory)


def test_kill_during_copy_rolls_back(agents, tmp_path):
    agent = agents()
    x = login(agent).xenapi
    sr, sr_uuid = local_sr(x)
    size = 512 * MiB
    vdi = x.VDI.create(vdi_record(sr, size, "big"))
    path = vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(vdi))
    block = bytes(range(256)) * 8192
    write(path, [(o, block) for o in range(0, size, 2 * MiB)])
    location = str(tmp_path / "other")
    other = x.SR.create(x.host.get_all()[0], {"location": location}, "0", "other", "", "file",
                        "", False, {})
    other_dir = os.path.join(location, x.SR.get_uuid(other))
    task = x.Async.VDI.copy(vdi, other, NULL, NULL)
    wait_for(lambda: vhd_files(other_dir), 20.0, pause=0.01, what="the copy's new file")
    assert x.task.get_status(task) == "pending"
    agent.kill()
    [partial] = vhd_files(other_dir)
    assert os.path.getsize(os.path.join(other_dir, partial + ".vhd")) < size

    agent = agents()
    x = login(agent).xenapi
    assert x.PBD.get_currently_attached(x.SR.get_PBDs(other)[0]) is True
    assert vhd_files(other_dir) == set() and x.SR.get_VDIs(other) == []
    assert_consistent(x, agent.state_dir, other, other_dir)
    assert_consistent(x, agent.state_dir, sr, os.path.join(agent.state_dir, "sr", sr_uuid))
    # the source is untouched, and a copy now goes through
    copy = x.VDI.copy(vdi, other, NULL, NULL)
    assert x.SR.get_VDIs(other) == [copy]
    assert_consistent(x, agent.state_dir, other, other_dir)


def test_a_client_hanging_up_mid_clone_does_not_stop_it(agents):
    """The call's work runs on when its client goes: the clone ends recorded, not half-made."""
    agent = agents(HOSTAGENT_FAULT_DELAY_VOL_CLONE="1")
    session = login(agent)
    x = session.xenapi
    sr, sr_uuid = local_sr(x)
    directory = os.path.join(agent.state_dir, "sr", sr_uuid)
    vdi, _ = make_disk(x, sr, lambda v: vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(v)))
    before = set(x.VDI.get_all())
    body = xmlrpc.client.dumps((session._session, vdi, {}), "VDI.clone").encode()
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    wait_for(lambda: intents(agent.state_dir), 20.0, pause=0.01, what="the clone's intent")
    conn.close()  # hang up while the driver call is held by the hook
    wait_for(lambda: not intents(agent.state_dir), 20.0, pause=0.01, what="the clone to finish")
    [clone] = [v for v in set(x.VDI.get_all()) - before if x.VDI.get_managed(v)]
    assert x.VDI.get_name_label(clone) == "precious"
    assert_consistent(x, agent.state_dir, sr, directory)


def test_random_kills_during_clones_and_snapshots(agents):
    rng = random.Random(20)
    agent = agents()
    x = login(agent).xenapi
    sr, sr_uuid = local_sr(x)
    directory = os.path.join(agent.state_dir, "sr", sr_uuid)
    vdi, model = make_disk(x, sr, lambda v: vhd_path(agent.state_dir, sr_uuid, x.VDI.get_uuid(v)))
    uuid = x.VDI.get_uuid(vdi)
    for _ in range(3):
        stop = threading.Event()

        def branch_until_killed(x=x):
            for i in range(1000):
                if stop.is_set():
                    return
                try:
                    getattr(x.VDI, "clone" if i % 2 else "snapshot")(vdi, {})
                except Exception:  # noqa: BLE001 - the agent dies under it
                    return
        worker = threading.Thread(target=branch_until_killed, daemon=True)
        worker.start()
        time.sleep(rng.uniform(0.05, 0.5))
        agent.kill()
        stop.set()
        worker.join(10)
        agent = agents()
        x = login(agent).xenapi
        assert_consistent(x, agent.state_dir, sr, directory)
        assert x.VDI.get_uuid(vdi) == uuid
        assert read_pyvhdi(os.path.join(directory, uuid + ".vhd"), SIZE) == model
