"""Small helpers several test modules share: bounded waiting and loop devices."""

import subprocess
import time

import pytest


def wait_for(predicate, timeout, what="condition", pause=0.02):
    """Poll until predicate() is truthy and return its value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(pause)


def attach_loop(image, size="128M") -> str:
    """A loop device on a fresh sparse image file; skips the test if none can be had."""
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    try:
        return subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                              text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no loop device available: {exc.stderr.strip()}")


def detach_loop(device, image) -> None:
    subprocess.run(["losetup", "-d", device], capture_output=True)
    image.unlink(missing_ok=True)
