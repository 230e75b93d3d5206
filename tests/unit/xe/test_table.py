"""The command table is what the datamodel says today, and xe never loads the datamodel."""

import json
import os
import subprocess
import sys

from hostagent.xe import gentable, model
from hostagent.xe import main as xe_main
from hostagent.xe.command import Registry


def test_commands_json_is_current():
    with open(gentable.TABLE, encoding="utf-8") as f:
        current = f.read()
    assert current == gentable.render(), \
        "hostagent/xe/commands.json is stale (the datamodel changed): run `make docs`"


def test_gentable_writes_a_loadable_table(tmp_path):
    out = tmp_path / "t.json"
    assert gentable.main([str(out)]) == 0
    m = model.load(str(out))
    vm = m.classes["VM"]
    assert vm.cli == "vm" and vm.constructor
    assert vm.field("name-label").marker == "( RW)"
    assert vm.field("other-config").marker == "(MRW)"
    assert vm.field("allowed-operations").marker == "(SRO)"
    assert vm.field("dom-id").api == "domid"
    assert m.classes["VBD"].field("vm-uuid").api == "VM"
    assert json.loads(out.read_text())["errors"]["HANDLE_INVALID"] == ["class", "handle"]


def test_handwritten_table_matches_the_modules():
    m = model.load()
    import importlib
    for module, names in xe_main.HANDWRITTEN.items():
        reg = Registry()
        importlib.import_module(f"hostagent.xe.{module}").register(reg, m)
        assert tuple(sorted(reg)) == tuple(sorted(names)), module


def test_xe_imports_neither_twisted_nor_the_agent():
    code = ("import sys, io; from hostagent.xe.main import main, registry; from hostagent.xe import model;"
            "registry(model.load()); main(['help', '--all'], out=io.StringIO());"
            "bad = [m for m in sys.modules if m.startswith(('twisted', 'hostagent.server', "
            "'hostagent.actions', 'hostagent.datamodel', 'hostagent.rpc', 'hostagent.db', 'libvirt'))];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HOME": "/nonexistent"})
    assert out.stdout.strip() == ""
