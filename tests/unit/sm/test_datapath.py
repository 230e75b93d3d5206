"""sm.datapath without nbdkit: the attach/detach order, owners, records and the nbdkit argv.

A stand-in for NbdServers logs what would start and stop; the drivers' booking is a
stand-in too (expose/release), so each step's order and undoing can be seen.
"""

import os

import pytest

from sm.datapath.attach import Datapath, attachments
from sm.datapath.records import Records
from sm.datapath.server import PLUGIN, SM_ROOT, NbdServers, plugin_env
from sm.driver import Attachment
from sm.errors import BackendFailure, ToolFailed, VolumeInUse

SR = "5e5e5e5e-0000-4000-8000-000000000000"
VOL = "70707070-0000-4000-8000-000000000000"
OTHER = "71717171-0000-4000-8000-000000000000"


class FakeServers(NbdServers):
    """Records starts and stops; a started server is live until stopped."""

    def __init__(self, directory, log, records=None, fail=False):
        super().__init__(directory)
        self.log, self.records, self.fail = log, records, fail
        self.live = {}

    def start(self, ident, image, writable):
        recorded = [r.ident for r in self.records.all()] if self.records else []
        self.log.append(("start", ident, image, writable, ident in recorded))
        if self.fail:
            raise ToolFailed(["nbdkit"], 1, "", "nbdkit: error: cannot open the VHD", "VDIUnavailable")
        self.live[ident] = 1000 + len(self.live)
        return self.live[ident]

    def serving(self, ident):
        return self.live.get(ident)

    def stop(self, ident):
        self.log.append(("stop", ident))
        self.live.pop(ident, None)


class Booking:
    """A driver's expose/release: counts bookings; chains (``chain=True``) are served."""

    def __init__(self, log, chain=False):
        self.log, self.chain = log, chain
        self.count = {}

    def expose(self, uuid, writable, serve):
        if writable and self.count.get(uuid):
            raise VolumeInUse(uuid, "attach")
        self.count[uuid] = self.count.get(uuid, 0) + 1
        self.log.append(("book", uuid))
        try:
            if self.chain:
                return serve(f"/sr/{uuid}.vhd")
            return Attachment(kind="file", path=f"/sr/{uuid}.vhd", format="vpc")
        except BaseException:
            self.release(uuid)
            raise

    def release(self, uuid):
        self.count[uuid] -= 1
        self.log.append(("release", uuid))


@pytest.fixture
def log():
    return []


def datapath(tmp_path, log, **kw):
    records = Records(str(tmp_path))
    return Datapath(str(tmp_path), SR, FakeServers(records.dir, log, records, **kw))


def attach(dp, booking, uuid=VOL, writable=True, owner="vbd-1"):
    return dp.attach(uuid, writable, owner, booking.expose, booking.release)


def detach(dp, booking, uuid=VOL, owner="vbd-1"):
    dp.detach(uuid, owner, booking.release)


def test_a_chain_is_recorded_before_its_server_starts_and_stopped_before_it_is_forgotten(
        tmp_path, log):
    dp, booking = datapath(tmp_path, log), Booking(log, chain=True)
    att = attach(dp, booking)
    ident = os.path.basename(att.path)[:-len(".sock")]
    assert att == Attachment(kind="nbd", path=str(tmp_path / "datapath" / f"{ident}.sock"),
                             format="raw", uri=f"nbd+unix:///?socket={att.path}", sr=SR,
                             vdi=VOL, owner="vbd-1", writable=True)
    assert log == [("book", VOL), ("start", ident, f"/sr/{VOL}.vhd", True, True)]
    assert dp.attachments() == [att] == attachments(str(tmp_path))

    log.clear()
    detach(dp, booking)
    assert log == [("stop", ident), ("release", VOL)]
    assert dp.attachments() == []
    detach(dp, booking)  # idempotent: nothing stopped or released twice
    assert log == [("stop", ident), ("release", VOL)]


def test_a_server_that_fails_to_start_leaves_no_record_and_no_booking(tmp_path, log):
    dp, booking = datapath(tmp_path, log, fail=True), Booking(log, chain=True)
    with pytest.raises(ToolFailed) as info:
        attach(dp, booking)
    assert info.value.code == "SR_BACKEND_FAILURE_46"
    assert [step[0] for step in log] == ["book", "start", "stop", "release"]
    assert dp.attachments() == [] and booking.count[VOL] == 0


def test_the_same_owner_gets_the_same_attachment_and_a_dead_server_is_started_again(
        tmp_path, log):
    dp, booking = datapath(tmp_path, log), Booking(log, chain=True)
    first = attach(dp, booking)
    assert attach(dp, booking) == first
    assert booking.count[VOL] == 1 and len(dp.attachments()) == 1
    with pytest.raises(VolumeInUse):
        attach(dp, booking, writable=False)  # the same owner in the other mode

    # An agent restart: a new Datapath finds the record; the server died meanwhile.
    again = datapath(tmp_path, log)
    log.clear()
    assert again.attachments() == [first]
    ident = os.path.basename(first.path)[:-len(".sock")]
    assert again.servers.serving(ident) is None
    assert attach(again, booking) == first
    assert log == [("start", ident, f"/sr/{VOL}.vhd", True, True)]
    assert again.servers.serving(ident) is not None
    detach(again, booking)
    assert again.attachments() == [] and booking.count[VOL] == 0


def test_anonymous_attachments_count_and_detach_newest_first(tmp_path, log):
    dp, booking = datapath(tmp_path, log), Booking(log)
    a = attach(dp, booking, writable=False, owner="")
    b = attach(dp, booking, writable=False, owner="")
    assert (a.kind, a.format, a.path) == ("file", "vpc", f"/sr/{VOL}.vhd")
    assert len(dp.attachments()) == 2 and booking.count[VOL] == 2
    detach(dp, booking, owner="")
    assert len(dp.attachments()) == 1 and booking.count[VOL] == 1
    detach(dp, booking, owner="")
    detach(dp, booking, owner="")
    assert dp.attachments() == [] and booking.count[VOL] == 0
    assert b == a  # the same place, the same mode


def test_owners_and_volumes_are_kept_apart(tmp_path, log):
    dp, booking = datapath(tmp_path, log), Booking(log, chain=True)
    x = attach(dp, booking, writable=False, owner="vm-a")
    y = attach(dp, booking, writable=False, owner="vm-b")
    z = attach(dp, booking, uuid=OTHER, owner="vm-a")
    assert len({x.path, y.path, z.path}) == 3  # one server per attachment
    detach(dp, booking, owner="vm-b")
    detach(dp, booking, owner="vm-b")
    assert [a.owner for a in dp.attachments()] == ["vm-a", "vm-a"]
    assert booking.count == {VOL: 1, OTHER: 1}
    # Another SR's datapath sees none of them; the host-wide listing sees all.
    assert Datapath(str(tmp_path), OTHER).attachments() == []
    assert len(attachments(str(tmp_path))) == 2


def test_records_ignore_junk_and_half_written_files(tmp_path):
    records = Records(str(tmp_path))
    att = Attachment("block", "/dev/vg/lv", "raw", sr=SR, vdi=VOL, owner="o", writable=True)
    records.put("abcd0123", att)
    (tmp_path / "datapath" / "ffff0000.json").write_text("{not json")
    (tmp_path / "datapath" / "ffff0001.json.tmp").write_text("{}")
    (tmp_path / "datapath" / "abcd0123.log").write_text("nbdkit said things")
    assert [(r.ident, r.attachment) for r in records.all()] == [("abcd0123", att)]
    assert records.find(SR, VOL, "o").attachment == att
    assert records.find(SR, VOL, "") is None
    records.drop("abcd0123")
    records.drop("abcd0123")
    assert records.all() == []


def test_nbdkit_outlives_its_parent_and_is_read_only_when_asked():
    servers = NbdServers("/var/lib/hostagent/datapath")
    argv = servers.argv("0badcafe", "/srs/x/leaf.vhd", writable=False)
    d = "/var/lib/hostagent/datapath"
    assert argv == ["nbdkit", "-U", f"{d}/0badcafe.sock", "-P", f"{d}/0badcafe.pid",
                    "--log=stderr", "-r", "python", PLUGIN, "file=/srs/x/leaf.vhd",
                    "writable=0", f"log={d}/0badcafe.log"]
    writable = servers.argv("0badcafe", "/l.vhd", writable=True)
    # nbdkit's own daemon (no -f), never tied to its parent; read-write without -r
    assert not {"-f", "--exit-with-parent", "-r"} & set(writable) and "writable=1" in writable
    assert os.path.isfile(os.path.join(SM_ROOT, "sm", "vhd", "image.py"))
    assert plugin_env()["PYTHONPATH"].split(os.pathsep)[0] == SM_ROOT
    assert servers.runner.env["PYTHONPATH"] == plugin_env()["PYTHONPATH"]


def test_a_socket_path_too_long_for_unix_sockets_is_refused_up_front(tmp_path):
    servers = NbdServers("/" + "d" * 100)
    with pytest.raises(BackendFailure) as info:
        servers.start("0badcafe", "/l.vhd", True)
    assert info.value.code == "SR_BACKEND_FAILURE_46"
    assert "shorter state directory" in info.value.params[1]


def test_a_missing_nbdkit_says_what_to_install(tmp_path):
    servers = NbdServers(str(tmp_path), binary=str(tmp_path / "no-nbdkit"))
    with pytest.raises(ToolFailed) as info:
        servers.start("0badcafe", "/l.vhd", True)
    assert info.value.rc == 127 and "apt-get install nbdkit" in info.value.params[1] + \
        info.value.stderr
    assert servers.serving("0badcafe") is None
    servers.stop("0badcafe")  # nothing to stop
