"""Long operations: run through `Async.*`, follow the task, show its progress.

A bar is drawn on stdout only when it is a terminal and `--minimal` is not given;
otherwise the task is followed silently. Ctrl-C cancels the task.
"""

import contextlib
import time
import xmlrpc.client
from xml.parsers.expat import ExpatError

from .errors import Failure

BAR = 40


class Progress:
    """A one-line bar redrawn in place; `done()` wipes it."""

    def __init__(self, out, label):
        self.out = out
        self.label = label
        self.shown = False

    def update(self, fraction):
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(BAR * fraction)
        self.out.write(f"\r{self.label} [{'#' * filled}{' ' * (BAR - filled)}] {int(fraction * 100):3d}%")
        self.out.flush()
        self.shown = True

    def done(self):
        if self.shown:
            self.out.write("\r" + " " * (len(self.label) + BAR + 8) + "\r")
            self.out.flush()


def wants_bar(ctx) -> bool:
    out = ctx.out
    return not ctx.opts.minimal and hasattr(out, "isatty") and out.isatty()


def run_message(ctx, wire, args, msg=None):
    """Call `wire`; with an Async form, through a task whose progress is shown."""
    if msg is not None and not msg.get("async"):
        return ctx.call(wire, *args)
    task = ctx.call(f"Async.{wire}", *args)
    return wait(ctx, task, wire.split(".", 1)[1].replace("_", " "))


class StillPending(Exception):
    """wait(..., timeout=) ran out with the task still pending."""


def wait(ctx, task, label="working", timeout=None):
    bar = Progress(ctx.out, label) if wants_bar(ctx) and timeout is None else None
    delay = 0.01
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            rec = ctx.call("task.get_record", task)
            status = rec.get("status")
            if bar is not None:
                with contextlib.suppress(TypeError, ValueError):
                    bar.update(float(rec.get("progress", 0.0)))
            if status != "pending" and status != "cancelling":
                break
            if deadline is not None and time.monotonic() > deadline:
                raise StillPending(task)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    except KeyboardInterrupt:
        ctx.call("task.cancel", task)
        raise
    finally:
        if bar is not None:
            bar.done()
    with contextlib.suppress(Failure):
        ctx.call("task.destroy", task)
    if status == "success":
        return decode_result(rec.get("result", ""))
    if status == "cancelled":
        raise Failure(rec.get("error_info") or ["TASK_CANCELLED", task])
    raise Failure(rec.get("error_info") or ["INTERNAL_ERROR", f"task ended {status}"])


def decode_result(text):
    """task.result is an XML-RPC <value> fragment as a string."""
    if not text:
        return None
    try:
        (value,), _ = xmlrpc.client.loads(
            f"<methodResponse><params><param>{text}</param></params></methodResponse>")
    except (ExpatError, ValueError, xmlrpc.client.ResponseError):  # shown as it is
        return text
    return value
