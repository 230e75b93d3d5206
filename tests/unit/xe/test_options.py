"""xe's command line: options, parameters, ~/.xe and XE_EXTRA_ARGS, as XenServer's xe reads them."""

import pytest

from hostagent.xe.errors import UsageError
from hostagent.xe.options import parse, split_extra_args


def env(tmp_path, rc=None, extra=None):
    if rc is not None:
        (tmp_path / ".xe").write_text(rc)
    e = {"HOME": str(tmp_path)}
    if extra is not None:
        e["XE_EXTRA_ARGS"] = extra
    return e


def test_defaults(tmp_path):
    o = parse(["vm-list"], env(tmp_path))
    assert (o.command, o.server, o.port_given, o.username, o.password, o.nossl, o.minimal) == \
        ("vm-list", "", False, "root", "null", False, False)


def test_flags_parameters_and_their_order(tmp_path):
    o = parse(["-s", "h", "-p", "81", "-u", "me", "-pw", "pw", "vm-param-set", "uuid=u",
               "other-config:k=a=b", "name-label=x y", "--minimal", "--force", "--nossl"], env(tmp_path))
    assert (o.server, o.port, o.port_given, o.username, o.password, o.nossl) == ("h", 81, True, "me", "pw", True)
    assert list(o.params.items()) == [("uuid", "u"), ("other-config:k", "a=b"), ("name-label", "x y")]
    assert o.minimal and o.flag("force") and not o.flag("multiple")
    assert parse(["vm-start", "force=true"], env(tmp_path)).flag("force")


def test_h_is_s_and_key_value_forms(tmp_path):
    o = parse(["-h", "a", "vm-list", "port=90", "username=u", "password=p", "nossl=true"], env(tmp_path))
    assert (o.server, o.port, o.username, o.password, o.nossl) == ("a", 90, "u", "p", True)
    assert o.params == {}


def test_password_file(tmp_path):
    f = tmp_path / "pw"
    f.write_text("admin\nsecret word\n")
    o = parse(["-pwf", str(f), "host-list"], env(tmp_path))
    assert (o.username, o.password) == ("admin", "secret word")
    f.write_text("only-one-line\n")
    with pytest.raises(UsageError, match="password line"):
        parse(["-pwf", str(f), "host-list"], env(tmp_path))
    with pytest.raises(UsageError, match="Cannot read the password file"):
        parse(["-pwf", str(tmp_path / "none"), "host-list"], env(tmp_path))


def test_precedence_command_line_over_extra_args_over_rc(tmp_path):
    e = env(tmp_path, rc="# comment\nserver=rc\nport=1\nusername=rcuser\nnossl=true\n",
            extra="server=extra,password=ex\\,tra")
    o = parse(["vm-list"], e)
    assert (o.server, o.port, o.username, o.password, o.nossl) == ("extra", 1, "rcuser", "ex,tra", True)
    o = parse(["-s", "cli", "vm-list"], e)
    assert o.server == "cli" and o.password == "ex,tra"


def test_extra_args_escapes():
    assert split_extra_args("a=1,b=2\\,3, c=4,") == ["a=1", "b=2,3", "c=4"]
    assert split_extra_args("") == []


def test_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="-s needs a value"):
        parse(["vm-list", "-s"], env(tmp_path))
    with pytest.raises(UsageError, match="Port must be a number"):
        parse(["-p", "http", "vm-list"], env(tmp_path))
    with pytest.raises(UsageError, match="Unexpected argument: stray"):
        parse(["vm-list", "stray"], env(tmp_path))


def test_help_topic(tmp_path):
    o = parse(["help", "vm-start"], env(tmp_path))
    assert (o.command, o.topic) == ("help", "vm-start")
