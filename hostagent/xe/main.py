"""`xe`: XenServer's command line for this agent.

Reads the command line (options.py), finds the command (derived ones from
generic.py, hand-written ones beside it), runs it against the agent and turns
every failure into a message on stderr and exit status 1.
"""

import sys

from . import model as M
from .command import Context, Registry
from .errors import ConnectError, Failure, UsageError, XeError
from .options import parse


def registry(model) -> Registry:
    from . import generic, misc, netcmds, storagecmds, vmcmds
    from . import help as helpcmd
    reg = Registry()
    generic.register(reg, model)
    for module in (vmcmds, storagecmds, netcmds, misc):
        module.register(reg, model)
    helpcmd.register(reg, model)
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
        reg = registry(model)
        name = opts.command or "help"
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
    except XeError as e:
        out.flush()
        for line in e.lines(model):
            err.write(line + "\n")
        return e.exit_code
    except KeyboardInterrupt:
        err.write("Interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except (ConnectError, Failure):
                pass


def entry():
    sys.exit(main())
