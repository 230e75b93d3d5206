"""One agent per state dir: a second one refuses to start and says why."""

import subprocess
import sys


def test_second_agent_on_the_same_state_dir_refuses(fresh_agent):
    fresh_agent.start()
    second = subprocess.run(
        [sys.executable, "-m", "hostagent", "serve", "--state-dir", fresh_agent.state_dir,
         "--listen", "127.0.0.1:0", "--unix-socket", ""],
        capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"another hostagent (pid {fresh_agent.proc.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert fresh_agent.alive()
    fresh_agent.kill()  # the kernel drops the lock with the process
    fresh_agent.start()
    assert fresh_agent.alive()
