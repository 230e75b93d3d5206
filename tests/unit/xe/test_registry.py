"""The commands xe derives from the command table, and those that need no agent (help, usage)."""

import io

from hostagent.xe import main as xe_main
from hostagent.xe import model

MODEL = model.load()
REG = xe_main.registry(MODEL)


def test_every_listable_class_has_its_derived_commands():
    for cls in MODEL.classes.values():
        if not cls.get_all:
            assert f"{cls.cli}-list" not in REG
            continue
        for verb in ("list", "param-list", "param-get", "param-set", "param-add", "param-remove",
                     "param-clear"):
            assert f"{cls.cli}-{verb}" in REG, (cls.name, verb)
        assert (f"{cls.cli}-create" in REG) == (cls.constructor or f"{cls.cli}-create" in
                                                 sum(xe_main.HANDWRITTEN.values(), ())), cls.name
    for view in ("template", "snapshot"):
        assert f"{view}-list" in REG and f"{view}-param-set" in REG


def test_messages_on_an_object_become_commands():
    for name in ("vbd-plug", "vbd-unplug", "pbd-plug", "pif-plug", "sr-scan", "sr-destroy", "sr-forget",
                 "vdi-resize", "vdi-clone", "task-cancel", "vlan-destroy", "bond-destroy", "vif-move"):
        assert name in REG, name
    assert REG["vdi-resize"].required == ("uuid", "size")
    assert REG["vif-move"].required == ("uuid", "network-uuid")


def test_hand_written_commands_win():
    assert REG["vm-clone"].run.__module__ == "hostagent.xe.vmcmds"
    assert REG["vm-start"].flags == ("multiple", "force", "paused")


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    return xe_main.main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def test_help_needs_no_agent(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    status, out, _ = run("help", "--all", "--minimal")
    assert status == 0 and set(out.strip().split(",")) == set(REG)
    status, out, _ = run("help", "vm-param-get")
    assert status == 0 and "reqd params     : uuid, param-name" in out
    status, out, _ = run("help", "vm-param-get", "--minimal")
    assert out == "uuid=,param-name=,param-key=\n"


def test_usage_errors_before_connecting(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run("frobnicate") == (1, "", "Unknown command: frobnicate\nFor usage run: 'xe help'\n")
    status, _, err = run("vm-param-get", "uuid=x")
    assert status == 1 and err.startswith("Required parameter not found: param-name")
    status, _, err = run("vm-param-list", "uuid=x", "colour=red")
    assert status == 1 and err.startswith("Unknown parameter: colour")
