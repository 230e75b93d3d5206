"""`xe help`, `xe help <command>`, `xe help --all`."""

from .command import Command

COMMON = ("vm-list", "vm-install", "vm-start", "vm-shutdown", "vm-reboot", "vm-suspend", "vm-resume",
          "vm-clone", "vm-copy", "vm-snapshot", "vm-uninstall", "vm-param-list", "vm-param-set",
          "template-list", "host-list", "sr-list", "vdi-create", "vdi-list", "network-list", "pif-list",
          "console-list", "task-list", "event-wait", "help")


def _columns(names, width=80):
    names = sorted(names)
    col = max(len(n) for n in names) + 2
    per_line = max(1, width // col)
    rows = [names[i:i + per_line] for i in range(0, len(names), per_line)]
    return "\n".join("".join(n.ljust(col) for n in row).rstrip() for row in rows) + "\n"


def _describe(cmd) -> str:
    required = ", ".join(cmd.required)
    optional = list(cmd.optional) + [f"--{f}" for f in cmd.flags]
    if cmd.open:
        optional.append("<field>=<value>...")
    return (f"command name            : {cmd.name}\n"
            f"        reqd params     : {required}\n"
            f"        optional params : {', '.join(optional)}\n"
            f"        description     : {cmd.help}\n"
            f"        usage           : xe {cmd.usage()}\n")


def parameter_names(ctx, cmd):
    """What `cmd` takes, for completion: `name=` for parameters, `--flag` for flags; a command
    taking field filters or field settings offers its class's fields too."""
    names = [f"{p}=" for p in cmd.required + cmd.optional]
    if cmd.fields:
        from . import generic as G
        from .records import columns
        views = {cli: cls for cli, cls, _ in G.views(ctx.model)}
        cls = views.get(cmd.group) or ctx.model.by_cli.get(cmd.group)
        if cls is not None:
            names += [f"{c.cli}=" for c in columns(cls) if f"{c.cli}=" not in names]
            if cmd.name.endswith("-list") and "params=" not in names:
                names.append("params=")
    return names + [f"--{f}" for f in cmd.flags]


def help_cmd(ctx):
    reg = ctx.registry
    topic = ctx.opts.topic
    if topic is not None:
        cmd = reg.get(topic)
        if cmd is None:
            from .errors import UsageError
            raise UsageError(f"Unknown command: {topic}")
        if ctx.opts.minimal:
            ctx.write(",".join(parameter_names(ctx, cmd)) + "\n")
        else:
            ctx.write(_describe(cmd))
        return
    if ctx.opts.minimal:
        ctx.write(",".join(sorted(reg)) + "\n")
        return
    if ctx.flag("all"):
        ctx.write("Commands:\n" + _columns(reg.keys()))
    else:
        ctx.write("Usage: xe <command> [-s server] [-p port] [-u user -pw password | -pwf file] [--nossl] "
                  "[--minimal] [name=value...]\n\nCommon commands:\n" +
                  _columns([c for c in COMMON if c in reg]) +
                  "\n'xe help --all' lists every command; 'xe help <command>' describes one.\n")


def register(reg, model):
    reg.add(Command("help", help_cmd, flags=("all",), group="help",
                    help="List the common commands (--all: every command), or describe one: help <command>."))
