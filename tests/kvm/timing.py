"""Where the KVM tests spend their time, printed as it happens (pytest's capture bypassed)."""

import contextlib
import sys
import time

import pytest


def terminal_log(config):
    """A print-like function that writes a line to pytest's terminal even while output is
    captured, so slow phases show up in an ordinary run."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def log(line):
        if reporter is None:
            print(line, file=sys.stderr)
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(line)
    return log


class Phases:
    """`with phases("boot"):` times a block and logs `kvm: boot 8.1 s`; `total` sums them."""

    def __init__(self, log):
        self.log = log
        self.times = {}

    @contextlib.contextmanager
    def __call__(self, what: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.times[what] = time.monotonic() - started
            self.log(f"kvm: {what} {self.times[what]:.1f} s")


@pytest.fixture
def phases(request):
    return Phases(terminal_log(request.config))
