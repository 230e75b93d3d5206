"""event-wait: block until an object of a class satisfies field conditions.

`xe event-wait class=vm uuid=... power-state=halted` checks the current state,
then follows `event.from` (30 s a call) until some object of the class matches
every `field=value` (and differs from every `field=/=value`).
"""

from . import generic as G
from .command import Command
from .errors import UsageError

TIMEOUT = 30.0


def _conditions(ctx, cls):
    conds = []
    for key, value in ctx.opts.params.items():
        if key == "class":
            continue
        name = key.partition(":")[0]
        if G.column(cls, name) is None:
            raise UsageError(f"Unknown parameter: {key} (not a field of {cls.cli})")
        if value.startswith("/="):
            conds.append((key, value[2:], False))
        else:
            conds.append((key, value, True))
    return conds


def _satisfied(ctx, cls, rec, conds):
    for key, value, equal in conds:
        if G.matches(ctx, cls, rec, [(key, value)]) != equal:
            return False
    return True


def event_wait(ctx):
    name = ctx.param("class")
    view = {cli: c for cli, c, _ in G.views(ctx.model)}.get(name)
    cls = view or ctx.model.by_cli.get(name)
    if cls is None:
        raise UsageError(f"Unknown class: {name}")
    conds = _conditions(ctx, cls)
    token = ""
    while True:
        batch = ctx.call("event.from", [cls.name.lower()], token, TIMEOUT)
        for ev in batch.get("events", []):
            rec = ev.get("snapshot")
            if ev.get("operation") == "del" or not rec:
                continue
            ctx.resolver.forget(cls.name)
            if _satisfied(ctx, cls, rec, conds):
                return
        token = batch.get("token", token)


def register(reg, model):
    reg.add(Command("event-wait", event_wait, required=("class",), open=True, group="event",
                    help="Wait until an object of class= (vm, host, sr, vdi, task, ...) has every "
                         "field=value given (field=/=value: any value but this one)."))
