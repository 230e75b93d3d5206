"""NBD clients for the datapath tests: qemu-io, and what the end of a server looks like."""

import subprocess


def qemu_io(uri, *commands, check=True, read_only=False):
    """Run qemu-io's commands against an NBD URI; with check, any failed command (or
    pattern mismatch) fails the test."""
    argv = ["qemu-io", "-f", "raw", *(["-r"] if read_only else []), uri]
    for c in commands:
        argv += ["-c", c]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    failed = done.returncode != 0 or "failed" in done.stdout + done.stderr
    if check:
        assert not failed, f"{argv}: {done.stdout}{done.stderr}"
    return done


def gone(pid):
    """The process has ended (a zombie nobody reaped yet counts: a server's parent is init,
    which in some containers never reaps)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True
