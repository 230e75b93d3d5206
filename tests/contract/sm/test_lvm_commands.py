"""The lvm driver's commands and extent arithmetic, with and without device-mapper, through a
recording runner (no root, no LVM): what test_lvm.py does on real LVM, seen as argv."""

import pytest

from sm.drivers import lvmsr
from sm.drivers.lvextents import SEGMENT_FIELDS, Piece, extent_map
from sm.drivers.lvmsr import LV_PREFIX, VG_PREFIX, LvmDriver
from sm.errors import BackendFailure, VolumeInUse
from sm.runner import RecordingRunner

from .test_lvm import EXTENT, MiB

# ---- command construction, both with and without device-mapper (no root needed) ------------

SR_UUID = "0f6e1d2c-3b4a-4958-8776-a5b4c3d2e1f0"
VOL = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
VG = VG_PREFIX + SR_UUID
NO_DM = ["--config", "global{activation=0}"]
REPORT = ["--reportformat", "json", "--units", "b", "--nosuffix"]


class _Lvm(LvmDriver):
    dm_control = "/"  # exists everywhere: the recorded dmsetup answer decides

    def devices(self):
        return ["/dev/fake0"]


def recorded(dm: bool) -> RecordingRunner:
    runner = RecordingRunner()
    runner.when(["dmsetup", "version"], rc=0 if dm else 1)
    vgs = {"report": [{"vg": [{"vg_name": VG, "vg_size": str(256 * MiB),
                               "vg_free": str(200 * MiB), "vg_extent_size": str(EXTENT)}]}]}
    lvs_before = {"report": [{"lv": []}]}
    lvs_after = {"report": [{"lv": [{"lv_name": LV_PREFIX + VOL, "lv_size": str(8 * MiB),
                                     "lv_tags": f"vsize={6 * MiB}"}]}]}
    runner.when_json(["vgs"], vgs)
    runner.when_json(["lvs"], lvs_after)
    runner.when_json(["lvs"], lvs_before, times=1)  # the existence check sees nothing
    return runner


class _FakeExtents:
    """Stands in for ExtentIO (no real PV behind /dev/fake0): records what it is asked."""
    opened: list = []

    def __init__(self, lv, pieces, size, writable):
        self.lv, self.pieces, self.size, self.writable = lv, pieces, size, writable
        self.capacity = sum(p.length for p in pieces)
        self.zeroed = []
        _FakeExtents.opened.append(self)

    def zero(self, offset, length):
        self.zeroed.append((offset, length))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_without_device_mapper_every_command_disables_activation(tmp_path, monkeypatch):
    runner = recorded(dm=False)
    segments = {"report": [{"seg": [
        {"lv_name": LV_PREFIX + VOL, "vg_extent_size": str(EXTENT), "segtype": "linear",
         "stripes": "1", "seg_start_pe": "0", "seg_size_pe": "2",
         "seg_pe_ranges": "/dev/fake0:5-6"}]}]}
    runner.when_json(["lvs", *NO_DM, *REPORT, "-o", SEGMENT_FIELDS], segments)
    runner.when_json(["pvs", *NO_DM, *REPORT, "-o", "pv_name,pe_start"],
                     {"report": [{"pv": [{"pv_name": "/dev/fake0", "pe_start": str(MiB)}]}]})
    monkeypatch.setattr(lvmsr, "ExtentIO", _FakeExtents)
    _FakeExtents.opened = []
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    volume = driver.vol_create(VOL, 6 * MiB)
    assert (volume.virtual_size, volume.physical_utilisation) == (6 * MiB, 8 * MiB)
    lvm_calls = [c for c in runner.calls if c[0] != "dmsetup"]
    assert all(c[1:3] == NO_DM for c in lvm_calls)
    assert ["lvcreate", *NO_DM, "--activate", "n", "--zero", "n", "--size", f"{6 * MiB}B",
            "--name", LV_PREFIX + VOL, "--addtag", f"vsize={6 * MiB}", VG] in runner.calls
    assert runner.commands("lvchange") == []
    assert ["lvs", *NO_DM, *REPORT, "-o", "lv_name,lv_size,lv_tags", VG] in runner.calls
    # The new LV's extents are zeroed on its PV, found by lvs --segments and pvs.
    assert ["lvs", *NO_DM, *REPORT, "-o", SEGMENT_FIELDS, "--segments",
            f"{VG}/{LV_PREFIX}{VOL}"] in runner.calls
    assert ["pvs", *NO_DM, *REPORT, "-o", "pv_name,pe_start", "/dev/fake0"] in runner.calls
    [io] = _FakeExtents.opened
    assert io.pieces == [Piece(0, 2 * EXTENT, "/dev/fake0", MiB + 5 * EXTENT)]
    assert io.writable and io.zeroed == [(0, 2 * EXTENT)]


def seg(start, size, ranges, segtype="linear", stripes="1"):
    return {"lv_name": "LV-x", "vg_extent_size": str(EXTENT), "segtype": segtype,
            "stripes": stripes, "seg_start_pe": str(start), "seg_size_pe": str(size),
            "seg_pe_ranges": ranges}


def test_extent_map_places_each_segment_on_its_pv():
    rows = [seg(3, 4, "/dev/b:0-3"), seg(0, 3, "/dev/a:10-12", "striped")]  # any order
    pieces = extent_map("LV-x", "vol_clone", rows, {"/dev/a": MiB, "/dev/b": 192 * 1024})
    assert pieces == [Piece(0, 3 * EXTENT, "/dev/a", MiB + 10 * EXTENT),
                      Piece(3 * EXTENT, 4 * EXTENT, "/dev/b", 192 * 1024)]


@pytest.mark.parametrize("rows, error, words", [
    ([seg(0, 2, "/dev/a:0-0 /dev/b:0-0", "striped", "2")], "38", "striped with 2 stripe(s)"),
    ([seg(0, 2, "LV-x_mimage_0:0-1 LV-x_mimage_1:0-1", "mirror", "2")], "38", "mirror"),
    ([seg(0, 2, "", "thin", "0")], "38", "thin"),
    ([seg(0, 2, "/dev/a:0-1"), seg(3, 1, "/dev/a:5-5")], "100", "does not follow extent 2"),
    ([seg(0, 2, "/dev/a:0-2")], "100", "does not follow"),
    ([seg(0, 2, "/dev/c:0-1")], "100", "not reported by pvs"),
    ([], "100", "no segments"),
])
def test_extent_map_refuses_what_it_cannot_place(rows, error, words):
    with pytest.raises(BackendFailure) as info:
        extent_map("LV-x", "vol_clone", rows, {"/dev/a": MiB, "/dev/b": MiB})
    assert info.value.code == f"SR_BACKEND_FAILURE_{error}"
    assert words in info.value.params[1]


class _FakeBlock:
    """Stands in for BlockIO (no activated LV behind the path): records what it is asked."""
    opened: list = []

    def __init__(self, path, size, writable, on_close=None):
        self.path, self.size, self.writable, self.on_close = path, size, writable, on_close
        self.capacity = 8 * MiB
        self.zeroed = []
        _FakeBlock.opened.append(self)

    def zero(self, offset, length):
        self.zeroed.append((offset, length))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.on_close()


def test_with_device_mapper_lvs_are_active_only_while_attached(tmp_path, monkeypatch):
    runner = recorded(dm=True)
    monkeypatch.setattr(lvmsr, "BlockIO", _FakeBlock)
    _FakeBlock.opened = []
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    driver.vol_create(VOL, 6 * MiB)
    assert ["lvcreate", "--activate", "y", "--zero", "y", "--wipesignatures", "y", "--yes",
            "--size", f"{6 * MiB}B", "--name", LV_PREFIX + VOL, "--addtag", f"vsize={6 * MiB}",
            VG] in runner.calls
    # the whole new LV is zeroed through its device, then it is deactivated
    [io] = _FakeBlock.opened
    assert (io.path, io.writable, io.zeroed) == (f"/dev/{VG}/LV-{VOL}", True, [(0, 8 * MiB)])
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]
    attachment = driver.vol_attach(VOL, writable=True)
    assert (attachment.kind, attachment.path) == ("block", f"/dev/{VG}/LV-{VOL}")
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "y", f"{VG}/LV-{VOL}"]
    with pytest.raises(VolumeInUse):
        driver.vol_resize(VOL, 10 * MiB)
    driver.vol_detach(VOL)
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]
    driver.detach()
    assert runner.calls[-1] == ["vgchange", "--activate", "n", VG]


class _LvmOnFile(_Lvm):
    """With device-mapper, its LV's device being a plain file that stands in for the
    activated /dev/<vg>/<lv> (what lvcreate and lvextend would give it is set up by
    the test)."""
    lv_file = None

    def device_path(self, uuid):
        return self.lv_file


def test_with_device_mapper_new_and_grown_space_is_zeroed_through_the_lv(tmp_path):
    """What the device-mapper path does to an LV's bytes, on a stand-in device: not
    only the 4 KiB lvcreate --zero clears, but every byte of a new LV and every byte a
    resize reveals read as zeros, written while the LV is active."""
    runner = recorded(dm=True)
    lv = tmp_path / "lv"
    lv.write_bytes(b"\xaa" * (8 * MiB))  # what a destroyed LV left on these extents
    driver = _LvmOnFile(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    driver.lv_file = str(lv)
    driver.vol_create(VOL, 6 * MiB)
    assert lv.read_bytes() == bytes(8 * MiB)
    create = runner.calls.index(next(c for c in runner.calls if c[0] == "lvcreate"))
    assert [c for c in runner.calls[create:] if c[0] == "lvchange"] == [
        ["lvchange", "--activate", "y", f"{VG}/LV-{VOL}"],
        ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]]

    # a guest wrote data, and bytes past the virtual size (the LV's last extent is whole)
    with open(lv, "r+b") as f:
        f.write(b"kept")
        f.seek(6 * MiB)
        f.write(b"\xbb" * (2 * MiB))
        f.write(b"\xcc" * (4 * MiB))  # lvextend's new extent, freed by another LV
    runner.calls.clear()
    driver.vol_resize(VOL, 10 * MiB)
    assert runner.commands("lvextend") == [["lvextend", "--size", f"{10 * MiB}B",
                                            f"{VG}/LV-{VOL}"]]
    assert lv.read_bytes() == b"kept" + bytes(12 * MiB - 4)
    assert runner.commands("lvchange")[:2] == [
        ["lvchange", "--activate", "y", f"{VG}/LV-{VOL}"],
        ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]]


def test_lvm_failures_name_their_table_entries(tmp_path):
    runner = recorded(dm=False).when(["lvcreate"], rc=5, stderr="  Insufficient free space\n")
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    with pytest.raises(BackendFailure) as info:
        driver.vol_create(VOL, 6 * MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_50"  # LVMCreate
    assert "Insufficient free space" in info.value.params[1]
