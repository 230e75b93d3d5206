"""sm.runner against real `sh -c` commands: exit codes, output, timeouts, and the recorder."""

import time

import pytest

from sm.errors import BackendFailure, Timeout, ToolFailed
from sm.runner import RecordingRunner, Result, Runner


def test_success_returns_output_and_status():
    result = Runner().run(["sh", "-c", "echo out; echo err >&2"])
    assert result == Result(0, "out\n", "err\n")


def test_non_zero_status_raises_tool_failed_with_the_chosen_table_entry():
    with pytest.raises(ToolFailed) as info:
        Runner().run(["sh", "-c", "echo partial; echo 'mount.nfs: access denied' >&2; exit 32"],
                     error="NFSMount")
    exc = info.value
    assert (exc.rc, exc.stdout, exc.stderr) == (32, "partial\n", "mount.nfs: access denied\n")
    assert exc.cmd[:2] == ("sh", "-c")
    assert exc.code == "SR_BACKEND_FAILURE_73"
    assert exc.params[0] == ""
    assert exc.params[1].startswith("NFS mount error [opterr=sh exited 32: mount.nfs: access")
    assert exc.params[2] == "mount.nfs: access denied\n"


def test_default_entry_is_the_general_backend_error():
    with pytest.raises(ToolFailed) as info:
        Runner().run(["sh", "-c", "exit 3"])
    assert info.value.code == "SR_BACKEND_FAILURE_202"


def test_ok_codes_accept_other_statuses():
    assert Runner().run(["sh", "-c", "exit 5"], ok_codes=(0, 5)).rc == 5


def test_input_reaches_stdin():
    assert Runner().run(["sh", "-c", "tr a-z A-Z"], input="abc").stdout == "ABC"


def test_arguments_are_never_interpreted_by_a_shell():
    result = Runner().run(["printf", "%s|", "a; echo injected", "$HOME", "*"])
    assert result.stdout == "a; echo injected|$HOME|*|"


def test_missing_tool_is_a_tool_failure_not_an_oserror():
    with pytest.raises(ToolFailed) as info:
        Runner().run(["no-such-tool-for-sm-tests"], error="LVMCreate")
    assert info.value.rc == 127
    assert info.value.code == "SR_BACKEND_FAILURE_50"


def test_timeout_kills_the_whole_process_group():
    started = time.monotonic()
    # The background sleep keeps stdout open: only killing the group ends the wait.
    with pytest.raises(Timeout) as info:
        Runner().run(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=0.5, error="NFSMount")
    assert time.monotonic() - started < 10
    assert info.value.code == "SR_BACKEND_FAILURE_73"
    assert "timed out after 0.5s" in info.value.params[1]
    assert isinstance(info.value, BackendFailure)


def test_default_timeout_comes_from_the_runner():
    with pytest.raises(Timeout):
        Runner(timeout=0.3).run(["sleep", "30"])


def test_environment_is_c_locale_with_sbin_on_path_and_extras():
    env = Runner(env={"SM_TEST": "1"}).run(["sh", "-c", "echo $LC_ALL:$SM_TEST:$PATH"])
    lc_all, extra, path = env.stdout.strip().split(":", 2)
    assert (lc_all, extra) == ("C", "1")
    assert "/usr/sbin" in path.split(":")


def test_record_sees_every_command_and_its_result():
    seen = []
    runner = Runner(record=lambda argv, result: seen.append((argv, result.rc)))
    runner.run(["true"])
    with pytest.raises(ToolFailed):
        runner.run(["false"])
    assert seen == [(["true"], 0), (["false"], 1)]


def test_json_parses_stdout_and_rejects_garbage():
    assert Runner().json(["echo", '{"report": [1]}']) == {"report": [1]}
    with pytest.raises(ToolFailed) as info:
        Runner().json(["echo", "not json"], error="SRScan")
    assert info.value.code == "SR_BACKEND_FAILURE_40"


def test_recording_runner_replays_rules_newest_first_and_records_argv():
    runner = RecordingRunner()
    runner.when(["lvs"], stdout="old")
    runner.when(["lvs", "VG"], stdout="new")
    assert runner.run(["lvs", "VG", "-o", "x"]).stdout == "new"
    assert runner.run(["lvs", "other"]).stdout == "old"
    assert runner.run(["vgs"]) == Result(0, "", "")
    runner.run(["cat"], input="data")
    assert runner.calls == [["lvs", "VG", "-o", "x"], ["lvs", "other"], ["vgs"], ["cat"]]
    assert runner.inputs[-1] == "data"
    assert runner.commands("lvs") == runner.calls[:2]


def test_recording_runner_fails_like_the_real_one():
    runner = RecordingRunner().when(["mount"], rc=32, stderr="no\n", times=1)
    with pytest.raises(ToolFailed) as info:
        runner.run(["mount", "x"], error="NFSMount")
    assert (info.value.rc, info.value.code) == (32, "SR_BACKEND_FAILURE_73")
    assert runner.run(["mount", "x"]).rc == 0  # the rule was used up
    runner.when(["umount"], timeout=True)
    with pytest.raises(Timeout):
        runner.run(["umount", "x"], timeout=5)
    runner.when_json(["vgs"], {"report": []})
    assert runner.json(["vgs"]) == {"report": []}
