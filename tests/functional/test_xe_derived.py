"""Every class's derived commands, generated from the command table: for each class
(and the template and snapshot views of VM), `<c>-list params=all` lists what the API
has, `<c>-param-list` shows every field, and `<c>-param-get` of every field (and of a
key of every non-empty map) prints what param-list showed and what the API holds.

The agent gets at least one object of most classes first (a running VM with disks,
consoles and metrics, a network with a VIF, a snapshot, a secret, a task); a class
with none must list nothing and refuse a uuid with UUID_INVALID. param-get runs
`xe` in-process (the same code as the program, without a process per field);
list and param-list run the real program.
"""

import io
import uuid

import pytest

from hostagent.xe import generic, model
from hostagent.xe import main as xe_main
from hostagent.xe.records import columns

from .events_support import login, logout
from .test_xe_support import XeRunner, install_vm, parse_records

pytestmark = pytest.mark.slow

MODEL = model.load()
VIEWS = [(cli, cls.name, hidden) for cli, cls, hidden in generic.views(MODEL)]


@pytest.fixture(scope="module")
def xe(agent, tmp_path_factory):
    return XeRunner(agent, tmp_path_factory.mktemp("xe-home"))


@pytest.fixture(scope="module")
def x(agent):
    s = login(agent, "xe-derived-test")
    yield s.xenapi
    logout(s)


@pytest.fixture(scope="module")
def world(xe, x):
    vm = install_vm(xe, "derived")
    net = xe("network-create", "name-label=derived-net")
    xe("vif-create", f"vm-uuid={vm}", f"network-uuid={net}", "device=0")
    xe("vm-snapshot", f"uuid={vm}", "new-name-label=derived-snap")
    xe("vm-start", f"uuid={vm}")
    xe("vm-param-set", f"uuid={vm}", "other-config:derived=yes", "tags=a,b")
    xe("secret-create", "value=s3cret")
    x.task.create("derived-task", "a task for the derived commands")
    return vm


class InProcess:
    """`xe` run by its main() in this process, with the runner's environment."""

    def __init__(self, xe):
        self.env = {"HOME": xe.home, "HOSTAGENT_CONFIG": xe.config}

    def __call__(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            for k, v in self.env.items():
                mp.setenv(k, v)
            mp.delenv("XE_EXTRA_ARGS", raising=False)
            status = xe_main.main(list(argv), out=out, err=err)
        assert status == 0, f"xe {' '.join(argv)}: {err.getvalue()}"
        return out.getvalue()


def api_objects(x, cls_name, hidden):
    recs = getattr(x, cls_name).get_all_records()
    return {r: rec for r, rec in recs.items() if all(rec.get(k) == v for k, v in hidden.items())}


@pytest.mark.parametrize("cli,cls_name,hidden", VIEWS, ids=[v[0] for v in VIEWS])
def test_derived_commands(cli, cls_name, hidden, xe, x, world):
    cls = MODEL.classes[cls_name]
    objects = api_objects(x, cls_name, hidden)
    listed = parse_records(xe(f"{cli}-list", "params=all"))
    assert sorted(r["uuid"] for r in listed) == sorted(rec["uuid"] for rec in objects.values())
    minimal = xe(f"{cli}-list", "--minimal")
    assert sorted(filter(None, minimal.split(","))) == sorted(rec["uuid"] for rec in objects.values())
    if not objects:
        p = xe.fails(f"{cli}-param-list", f"uuid={uuid.uuid4()}")
        assert "UUID_INVALID" in p.stderr
        return
    for rec in objects.values():
        shown = parse_records(xe(f"{cli}-param-list", f"uuid={rec['uuid']}"))
        assert len(shown) == 1
        shown = shown[0]
        assert list(shown) == [c.cli for c in columns(cls)]
        check_fields(cls, cli, rec, shown, InProcess(xe), x)
        break  # one object a class: the fields are what is being tested


def check_fields(cls, cli, rec, shown, run, x):
    for col in columns(cls):
        got = run(f"{cli}-param-get", f"uuid={rec['uuid']}", f"param-name={col.cli}")
        assert got == shown[col.cli] + "\n", col.cli
        if col.field is None:
            continue
        value, kind = rec[col.field.api], col.type[0]
        if kind == "string":
            assert shown[col.cli] == value, col.cli
        elif kind == "bool":
            assert shown[col.cli] == str(value).lower(), col.cli
        elif kind == "int":
            assert shown[col.cli] == str(value), col.cli
        elif kind == "ref":
            target = col.type[1]
            expect = ("<not in database>" if value == "OpaqueRef:NULL" or target not in MODEL.classes
                      else getattr(x, target).get_uuid(value))
            assert shown[col.cli] == expect, col.cli
        elif kind == "set" and col.type[1][0] == "string":
            assert shown[col.cli] == "; ".join(value), col.cli
        elif kind == "map" and value and col.type[2][0] == "string":
            key = next(iter(value))
            got = run(f"{cli}-param-get", f"uuid={rec['uuid']}", f"param-name={col.cli}", f"param-key={key}")
            assert got == value[key] + "\n", (col.cli, key)
