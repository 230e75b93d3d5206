"""Commands, their parameters and the context they run in.

A `Command` names its required and optional parameters (so usage errors can name
what is missing or unknown) and a `run(ctx)` function. `Context` holds the parsed
options, the model, the session (opened on first use) and the output stream.
"""

import sys

from .errors import UsageError

SELECTOR_HELP = "vm=<name or uuid> | uuid=<uuid> | <field>=<value>...; --multiple for several"


class Command:
    __slots__ = ("fields", "flags", "group", "help", "name", "open", "optional", "required", "run")

    def __init__(self, name, run, required=(), optional=(), flags=(), help="", open=False, group="",
                 fields=False):
        self.name = name
        self.run = run
        self.required = tuple(required)
        self.optional = tuple(optional)
        self.flags = tuple(flags)
        self.help = help
        self.open = open  # takes further parameters (field filters, map keys), checked by `run`
        self.group = group or name.split("-", 1)[0]
        self.fields = fields  # takes the fields of its group's class as parameters (filters, settings)

    def check(self, opts):
        for name in self.required:
            if name not in opts.params:
                raise UsageError(f"Required parameter not found: {name}")
        if not self.open:
            known = set(self.required) | set(self.optional)
            for name in opts.params:
                if name not in known and name not in self.flags:
                    raise UsageError(f"Unknown parameter: {name} (for {self.name})")
        for flag in opts.flags:
            if flag not in self.flags:
                raise UsageError(f"Unknown option: --{flag} (for {self.name})")

    def usage(self) -> str:
        parts = [self.name] + [f"{p}=<{p}>" for p in self.required] + [f"[{p}=<{p}>]" for p in self.optional]
        parts += [f"[--{f}]" for f in self.flags]
        if self.open:
            parts.append("[<field>=<value>...]")
        return " ".join(parts)


class Registry(dict):
    def add(self, command: Command):
        self[command.name] = command
        return command


class Context:
    """What a running command sees."""

    def __init__(self, opts, model, out=None, connect=None):
        self.opts = opts
        self.model = model
        self.out = out or sys.stdout
        self._connect = connect
        self._session = None
        self._resolver = None
        self.registry = None

    @property
    def session(self):
        if self._session is None:
            self._session = self._connect(self.opts)
        return self._session

    @property
    def resolver(self):
        if self._resolver is None:
            from .records import Resolver
            self._resolver = Resolver(self.session, self.model)
        return self._resolver

    def call(self, wire, *args):
        return self.session.call(wire, *args)

    def param(self, name, default=None):
        return self.opts.params.get(name, default)

    def flag(self, name) -> bool:
        return self.opts.flag(name)

    def write(self, text: str):
        self.out.write(text)

    def close(self):
        if self._session is not None:
            self._session.logout()
            self._session = None
