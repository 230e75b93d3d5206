"""install-repository parsing: the server name must not be able to become a mount option."""

import pytest

from hostagent.actions.install_rules import InstallError, parse_repository


@pytest.mark.parametrize("text", [
    "nfs://-oexec,suid/export",
    "nfs:-oexec:/export",
    "nfs://fi;ler/export",
    "http://-x/repo",
])
def test_server_names_that_are_not_names_are_refused(text):
    with pytest.raises(InstallError, match="not a server name"):
        parse_repository(text)


@pytest.mark.parametrize("text,host,path", [
    ("nfs://filer.example/export/debian", "filer.example", "/export/debian"),
    ("nfs:10.0.0.5:/srv/centos", "10.0.0.5", "/srv/centos"),
    ("nfs://[fd00::5]/srv", "[fd00::5]", "/srv"),
    ("http://mirror.example:8080/debian", "mirror.example:8080", "/debian"),
])
def test_ordinary_servers_are_accepted(text, host, path):
    repo = parse_repository(text)
    assert (repo.host, repo.path) == (host, path)
