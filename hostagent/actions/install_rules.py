"""eliloader's rules: what a PV install round boots, read from install_rules.json.

Pure functions over a VM's install keys (seed §5.2: install-repository,
install-round, install-vnc, install-vncpasswd, with install-distro naming
the rule): which installer kernel and initrd to look for, in the
repository or on the CD, the installer's command line in its own syntax,
and how many rounds the install takes. No distribution is code here; a new
one is an entry in the JSON file.
"""

import json
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

NETWORK_SCHEMES = ("http", "https", "ftp", "nfs")
CDROM = "cdrom"
INSTALL, FIND_KERNEL, DONE = "install", "find-kernel", "done"
TRUE = ("1", "true", "yes", "on")
# An NFS server as `mount` takes it: a host name, an IPv4 address or a bracketed IPv6 one.
# Never a leading '-', which mount would read as one of its own options.
NFS_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*")
Pair = Tuple[str, str]


class InstallError(Exception):
    """The VM's install keys cannot be followed; the message says which key and why."""


@dataclass(frozen=True)
class Repository:
    scheme: str  # http | https | ftp | nfs | cdrom
    host: str = ""  # host[:port]; nfs: the server
    path: str = ""  # the directory on it, "/..." (nfs: the export path)
    url: str = ""  # as given, without a trailing slash

    def join(self, relative: str) -> str:
        """The URL of a file below the repository (network schemes)."""
        return f"{self.url}/{relative.lstrip('/')}"


@dataclass(frozen=True)
class Plan:
    """What this start of the VM does."""

    distro: str
    round: int
    rounds: int
    step: str  # INSTALL: boot the installer; FIND_KERNEL: find the installed kernel; DONE
    repository: Optional[Repository] = None
    candidates: Tuple[Pair, ...] = ()  # INSTALL: (kernel, initrd) paths to try, in order
    cmdline: str = ""  # INSTALL: the installer's command line
    installed: Tuple[Pair, ...] = ()  # FIND_KERNEL: paths in the guest's file system

    @property
    def last(self) -> bool:
        return self.round >= self.rounds


def load() -> Dict[str, dict]:
    """The rule table, checked: every rule has the keys the planner reads."""
    text = resources.files(__package__).joinpath("install_rules.json").read_text()
    rules = {k: v for k, v in json.loads(text).items() if not k.startswith("_")}
    for name, rule in rules.items():
        for key in ("arch", "network", "cdrom", "args", "vnc", "vnc_password", "rounds"):
            if key not in rule:
                raise ValueError(f"install rule {name} has no {key!r}")
        if rule["rounds"] > 1 and not rule.get("installed"):
            raise ValueError(f"install rule {name} takes {rule['rounds']} rounds but names no installed kernel")
        for scheme in rule["args"]:
            if scheme not in NETWORK_SCHEMES + (CDROM,):
                raise ValueError(f"install rule {name}: unknown scheme {scheme!r}")
    return rules


def parse_repository(text: str) -> Repository:
    """install-repository: `cdrom`, or an http, https, ftp or nfs URL (nfs also as the
    installers' own `nfs:server:/path`)."""
    text = (text or "").strip()
    if text == CDROM:
        return Repository(CDROM, url=CDROM)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        raise InstallError(f"install-repository {text!r}: expected cdrom or an http, https, ftp or nfs URL")
    host, path = parts.netloc, parts.path
    if scheme == "nfs" and not host and ":" in path:  # nfs:server:/export
        host, _, path = path.partition(":")
    if not host:
        raise InstallError(f"install-repository {text!r} names no server")
    if host.startswith("-") or (scheme == "nfs" and not NFS_HOST.fullmatch(host)):
        raise InstallError(f"install-repository {text!r}: {host!r} is not a server name or address")
    if any(c.isspace() for c in text):
        raise InstallError(f"install-repository {text!r}: a URL has no spaces")
    return Repository(scheme, host, "/" + path.strip("/") if path.strip("/") else "/", text.rstrip("/"))


def install_round(other_config: dict) -> int:
    text = other_config.get("install-round", "1") or "1"
    try:
        value = int(text)
    except ValueError:
        raise InstallError(f"install-round {text!r} is not a number") from None
    if value < 1:
        raise InstallError(f"install-round {text!r}: rounds count from 1")
    return value


def plan(rules: Dict[str, dict], other_config: dict, pv_args: str, machine: str) -> Plan:
    """This start's plan for a VM booted by eliloader with the given other_config."""
    distro = other_config.get("install-distro", "")
    rule = rules.get(distro)
    if rule is None:
        raise InstallError(f"install-distro {distro!r}: eliloader knows {', '.join(sorted(rules))}")
    rounds = int(rule["rounds"])
    current = install_round(other_config)
    if current > rounds:
        return Plan(distro, current, rounds, DONE)
    if current > 1:
        return Plan(distro, current, rounds, FIND_KERNEL, installed=tuple(map(tuple, rule["installed"])))
    repo = parse_repository(other_config.get("install-repository", ""))
    allowed = [m.strip() for m in other_config.get("install-methods", "").split(",") if m.strip()]
    method = "http" if repo.scheme == "https" else repo.scheme
    if allowed and method not in allowed:
        raise InstallError(f"install-repository {repo.url!r}: this template installs from "
                           f"{', '.join(allowed)} only (install-methods)")
    if repo.scheme not in rule["args"]:
        raise InstallError(f"the {distro} installer cannot install from {repo.scheme} repositories")
    arch = rule["arch"].get(machine)
    if arch is None:
        raise InstallError(f"the {distro} rules know no installer for {machine} hosts")
    values = {"url": repo.url, "scheme": repo.scheme, "host": repo.host, "path": repo.path, "arch": arch,
              "suite": other_config.get(rule.get("suite_key", ""), ""), "vncpasswd": ""}
    candidates = rule[CDROM if repo.scheme == CDROM else "network"]
    needs_suite = any("{suite}" in p for pair in candidates for p in pair) and repo.scheme != CDROM
    if needs_suite and not values["suite"]:
        raise InstallError(f"other_config:{rule['suite_key']} must name the {distro} release to install")
    paths = tuple((k.format(**values), i.format(**values)) for k, i in candidates)
    return Plan(distro, current, rounds, INSTALL, repo, paths,
                cmdline=_cmdline(rule, repo, values, other_config, pv_args))


def _cmdline(rule: dict, repo: Repository, values: dict, other_config: dict, pv_args: str) -> str:
    parts = [pv_args.strip(), rule["args"][repo.scheme].format(**values)]
    if other_config.get("install-vnc", "false").lower() in TRUE and rule["vnc"]:
        parts.append(rule["vnc"])
        password = other_config.get("install-vncpasswd", "")
        if password and rule["vnc_password"]:
            if any(c.isspace() for c in password):
                raise InstallError("install-vncpasswd cannot hold spaces: it goes on a kernel command line")
            parts.append(rule["vnc_password"].format(**dict(values, vncpasswd=password)))
    return " ".join(p for p in parts if p)


def bootloader_args(kernel: str, ramdisk: str) -> str:
    """PV_bootloader_args naming an installed kernel, in pygrub's syntax (SLES's second round)."""
    return " ".join(f"--{key}={shlex.quote(value)}" for key, value in (("kernel", kernel), ("ramdisk", ramdisk))
                    if value)


def parse_bootloader_args(text: str) -> Dict[str, str]:
    """pygrub's --kernel, --ramdisk, --args and --entry from PV_bootloader_args."""
    out = {}
    try:
        words = shlex.split(text or "")
    except ValueError as e:
        raise InstallError(f"PV_bootloader_args {text!r}: {e}") from None
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or key not in ("--kernel", "--ramdisk", "--args", "--entry"):
            raise InstallError(f"PV_bootloader_args: {word!r} is not one of --kernel=, --ramdisk=, --args=, "
                               "--entry=")
        out[key[2:]] = value
    return out
