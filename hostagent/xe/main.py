"""`xe`: XenServer's command line for this agent.

Reads the command line (options.py), finds the command (derived ones from
generic.py, hand-written ones beside it), runs it against the agent and turns
every failure into a message on stderr and exit status 1.
"""

import contextlib
import sys

from . import model as M
from .command import Context, Registry
from .errors import ConnectError, Failure, UsageError, XeError
from .options import parse

# The hand-written commands and the module of each, so that one command imports only what it
# needs (tests/unit/xe/test_registry.py checks this against what the modules register).
HANDWRITTEN = {
    "vmcmds": ("vm-clone", "vm-copy", "vm-disk-add", "vm-disk-list", "vm-install", "vm-migrate", "vm-pause",
               "vm-reboot", "vm-resume", "vm-shutdown", "vm-snapshot", "vm-start", "vm-suspend",
               "vm-uninstall", "vm-unpause", "vm-vif-list"),
    "storagecmds": ("sr-create", "vdi-create"),
    "netcmds": ("bond-create", "network-create", "pif-scan", "vlan-create"),
    "misc": ("event-wait",),
    "transfer": ("vdi-export", "vdi-import", "vm-export", "vm-import"),
    "help": ("help",),
}


def registry(model, name=None) -> Registry:
    """Every command; with `name`, only the derived ones and the module that has `name`."""
    import importlib

    from . import generic
    reg = Registry()
    generic.register(reg, model)
    for module, names in HANDWRITTEN.items():
        if name is None or name in names:
            importlib.import_module(f"{__package__}.{module}").register(reg, model)
    return reg


def main(argv=None, out=None, err=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = out or sys.stdout
    err = err or sys.stderr
    model = None
    ctx = None
    try:
        opts = parse(argv)
        model = M.load()
        name = opts.command or "help"
        reg = registry(model, None if name == "help" else name)
        command = reg.get(name)
        if command is None:
            raise UsageError(f"Unknown command: {name}")
        command.check(opts)
        from .connect import connect
        ctx = Context(opts, model, out=out, connect=connect)
        ctx.registry = reg
        command.run(ctx)
        out.flush()
        return 0
    except Failure as e:
        out.flush()
        for line in e.lines(model, _describer(ctx, model)):
            err.write(line + "\n")
        return e.exit_code
    except XeError as e:
        out.flush()
        for line in e.lines(model):
            err.write(line + "\n")
        return e.exit_code
    except KeyboardInterrupt:
        err.write("Interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader went away (`xe vm-list | head -1`): quietly, as other commands do
        if out is sys.stdout:
            import os
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 - a fault of xe itself: one line, the details with --debug
        if ctx is not None and ctx.opts.debug:
            import traceback
            traceback.print_exc(file=err)
        err.write(f"xe failed unexpectedly: {type(e).__name__}: {e} (run with --debug for details)\n")
        return 1
    finally:
        if ctx is not None:
            with contextlib.suppress(ConnectError, Failure):
                ctx.close()


def _describer(ctx, model):
    """Error parameters that are references, as `uuid (name-label)` of the object they name."""
    if ctx is None or ctx._session is None or model is None:
        return None
    by_name = {}
    for cls in model.classes.values():
        by_name[cls.cli] = by_name[cls.name.lower()] = cls

    def describe(name, value):
        cls = by_name.get(name.lower())
        if cls is None or not value.startswith("OpaqueRef:"):
            return value
        try:
            rec = ctx.call(f"{cls.name}.get_record", value)
        except (Failure, ConnectError):
            return value
        label = rec.get("name_label")
        return f"{rec['uuid']} ({label})" if label is not None else rec["uuid"]
    return describe


def entry():
    sys.exit(main())
