"""Configuration of `hostagent serve`: command line over config file over defaults.

The config file is INI with one `[hostagent]` section whose keys are the long
option names (`state-dir`, `listen`, ...). It is named by `--config` or the
HOSTAGENT_CONFIG environment variable. `listen` may hold several addresses
separated by commas or new lines.
"""

import argparse
import configparser
import os
from dataclasses import dataclass, field
from typing import List, Optional

from .paths import default_state_dir

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_LIBVIRT = "test:///default"
# hypervisors on which the agent manages links unless told otherwise
MANAGED_NETWORK_URIS = ("xen:///system", "qemu:///system")
# the default libvirt URI of a host as a migration destination, by this host's own URI
MIGRATE_SCHEMES = {"xen:": "xen+ssh", "qemu:": "qemu+ssh"}


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


@dataclass
class Config:
    state_dir: str
    listen: List[str] = field(default_factory=lambda: [DEFAULT_LISTEN])
    tls_listen: List[str] = field(default_factory=list)
    cert: Optional[str] = None
    key: Optional[str] = None
    unix_socket: Optional[str] = None  # None: <state_dir>/xapi.sock; "" disables
    libvirt_uri: str = DEFAULT_LIBVIRT
    libvirt_migrate_uri: str = ""  # how other hosts' libvirtds reach this one's ("": the default, migrate_uri)
    auth: str = "local"
    auth_failure_delay: float = 5.0
    address: str = ""  # management address shown in host.address
    event_queue: int = 5000  # events an event.next session may have waiting
    log_level: str = "INFO"
    manage_network: bool = False  # touch links (bridges, VLANs); see MANAGED_NETWORK_URIS
    netns: str = ""  # the network namespace whose links the agent manages ("" : its own)
    host_console: bool = False  # a login vncterm for the host's console (docs/consoles.md)
    pool_heartbeat: float = 10.0  # seconds between a pool member's heartbeats (docs/pools.md)
    pool_host_timeout: float = 60.0  # seconds of silence before the master marks a member not live

    @property
    def socket_path(self) -> Optional[str]:
        if self.unix_socket == "":
            return None
        return self.unix_socket or os.path.join(self.state_dir, "xapi.sock")


def add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="INI file with a [hostagent] section of these options (default: $HOSTAGENT_CONFIG)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="where the database, users and sockets live "
                        "(default: /var/lib/hostagent as root, else $XDG_STATE_HOME/hostagent)")
    p.add_argument("--listen", metavar="HOST:PORT", action="append",
                   help=f"plain HTTP listener; repeat for several (default: {DEFAULT_LISTEN}; port 0 picks one)")
    p.add_argument("--tls-listen", metavar="HOST:PORT", action="append",
                   help="HTTPS listener (also the pool's internal endpoint); serves the host's own "
                        "certificate, made at first start in the state dir, unless --cert and --key")
    p.add_argument("--cert", metavar="FILE", help="PEM certificate for --tls-listen (with --key)")
    p.add_argument("--key", metavar="FILE", help="PEM private key for --tls-listen (with --cert)")
    p.add_argument("--unix-socket", metavar="PATH",
                   help="Unix socket whose callers are root without a password "
                        "(default: <state-dir>/xapi.sock; an empty value disables it)")
    p.add_argument("--libvirt-uri", metavar="URI",
                   help=f"hypervisor connection (default: {DEFAULT_LIBVIRT}; xen:///system on a dom0)")
    p.add_argument("--libvirt-migrate-uri", metavar="URI",
                   help="the libvirt URI at which other pool members' libvirtds reach this host's, to "
                        "live-migrate VMs here (VM.pool_migrate, host.evacuate); default "
                        "xen+ssh://ADDRESS/system with xen:///system and qemu+ssh://ADDRESS/system with "
                        "qemu:///system (ADDRESS: --address or the management address; root's ssh key must "
                        "open it), none with other drivers; 'none' takes no migrations (docs/pools.md)")
    p.add_argument("--auth", choices=("local", "pam"),
                   help="check passwords in the state dir's user database (local, the default) "
                        "or against dom0 accounts through PAM")
    p.add_argument("--auth-failure-delay", metavar="SECONDS", type=float,
                   help="pause before answering a failed login (default: 5, as xapi)")
    p.add_argument("--address", metavar="IP", help="management address to publish in host.address")
    p.add_argument("--event-queue", metavar="N", type=int,
                   help="events an event.next client may fall behind before EVENTS_LOST (default 5000)")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="default INFO")
    p.add_argument("--manage-network", dest="manage_network", action="store_const", const="yes",
                   help="make networks real bridges, PIFs real NICs and VLANs real links (default: on "
                        "with xen:///system and qemu:///system, off on the embedded test:///default, "
                        "where networks and PIFs are records only)")
    p.add_argument("--no-manage-network", dest="manage_network", action="store_const", const="no",
                   help="networks and PIFs are records only, whatever the hypervisor")
    p.add_argument("--host-console", choices=("yes", "no"),
                   help="serve the host's own console (a login prompt, run as root) through /console; "
                        "default no (docs/consoles.md)")
    p.add_argument("--pool-heartbeat", metavar="SECONDS", type=float,
                   help="seconds between a pool member's heartbeats to its master (default 10)")
    p.add_argument("--pool-host-timeout", metavar="SECONDS", type=float,
                   help="seconds without heartbeats before the master marks a member not live "
                        "(default 60)")
    p.add_argument("--netns", metavar="NAME",
                   help="manage the links of this network namespace (/run/netns/NAME) instead of the "
                        "agent's own")


_KEYS = ("state-dir", "listen", "tls-listen", "cert", "key", "unix-socket", "libvirt-uri", "auth",
         "libvirt-migrate-uri",
         "auth-failure-delay", "address", "log-level", "event-queue", "manage-network", "netns", "host-console",
         "pool-heartbeat", "pool-host-timeout")


def _split(value: str) -> List[str]:
    return [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]


def load(args: argparse.Namespace, environ=os.environ) -> Config:
    merged = {}
    path = args.config or environ.get("HOSTAGENT_CONFIG")
    if path:
        ini = configparser.ConfigParser()
        try:
            with open(path) as f:
                ini.read_file(f)
        except (OSError, configparser.Error) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        if not ini.has_section("hostagent"):
            raise ConfigError(f"config file {path} has no [hostagent] section")
        for key, value in ini.items("hostagent"):
            if key not in _KEYS:
                raise ConfigError(f"config file {path}: unknown key {key!r} (known: {', '.join(_KEYS)})")
            merged[key] = _split(value) if key in ("listen", "tls-listen") else value
    for key in _KEYS:
        value = getattr(args, key.replace("-", "_"), None)
        if value is not None:
            merged[key] = value
    cfg = Config(state_dir=merged.get("state-dir") or default_state_dir())
    if merged.get("listen") is not None:
        cfg.listen = list(merged["listen"])
    cfg.tls_listen = list(merged.get("tls-listen") or [])
    cfg.cert, cfg.key = merged.get("cert"), merged.get("key")
    cfg.unix_socket = merged.get("unix-socket")
    cfg.libvirt_uri = merged.get("libvirt-uri") or DEFAULT_LIBVIRT
    cfg.libvirt_migrate_uri = merged.get("libvirt-migrate-uri") or ""
    cfg.auth = merged.get("auth") or "local"
    if cfg.auth not in ("local", "pam"):
        raise ConfigError(f"auth must be local or pam, not {cfg.auth!r}")
    try:
        cfg.auth_failure_delay = float(merged.get("auth-failure-delay", 5.0))
    except ValueError:
        raise ConfigError("auth-failure-delay must be a number of seconds") from None
    cfg.address = merged.get("address") or ""
    try:
        cfg.event_queue = int(merged.get("event-queue", 5000))
    except ValueError:
        raise ConfigError("event-queue must be a whole number") from None
    if cfg.event_queue < 1:
        raise ConfigError("event-queue must be at least 1")
    cfg.log_level = (merged.get("log-level") or "INFO").upper()
    manage = str(merged.get("manage-network", "")).strip().lower()
    if manage in ("", "default"):
        cfg.manage_network = cfg.libvirt_uri in MANAGED_NETWORK_URIS
    elif manage in ("yes", "true", "on", "1"):
        cfg.manage_network = True
    elif manage in ("no", "false", "off", "0"):
        cfg.manage_network = False
    else:
        raise ConfigError(f"manage-network must be yes or no, not {manage!r}")
    cfg.netns = merged.get("netns") or ""
    host_console = str(merged.get("host-console", "")).strip().lower()
    if host_console in ("", "no", "yes"):
        cfg.host_console = host_console == "yes"
    else:
        raise ConfigError(f"host-console must be yes or no, not {host_console!r}")
    if cfg.host_console and os.geteuid() != 0:
        raise ConfigError("host-console serves a login prompt, which needs the agent to run as root")
    if cfg.netns and not cfg.manage_network:
        raise ConfigError("--netns names the namespace whose links the agent manages: it needs --manage-network")
    if bool(cfg.cert) != bool(cfg.key):
        raise ConfigError("--cert and --key go together (without both, TLS listeners serve the host's own "
                          "certificate)")
    for key, default in (("pool-heartbeat", 10.0), ("pool-host-timeout", 60.0)):
        try:
            value = float(merged.get(key, default))
        except ValueError:
            raise ConfigError(f"{key} must be a number of seconds") from None
        if not 0 < value <= 86400:
            raise ConfigError(f"{key} must be between 0 and 86400 seconds")
        setattr(cfg, key.replace("-", "_"), value)
    if cfg.pool_host_timeout <= cfg.pool_heartbeat:
        raise ConfigError("pool-host-timeout must be longer than pool-heartbeat")
    for spec in cfg.listen + cfg.tls_listen:
        parse_hostport(spec)
    return cfg


def migrate_uri(cfg: Config, address: str) -> str:
    """The libvirt URI other hosts migrate VMs to this one at ("" when it takes none)."""
    if cfg.libvirt_migrate_uri:
        return "" if cfg.libvirt_migrate_uri.strip().lower() == "none" else cfg.libvirt_migrate_uri
    scheme = MIGRATE_SCHEMES.get(cfg.libvirt_uri.rstrip("/").replace(":///system", ":"))
    return f"{scheme}://{address}/system" if scheme and address else ""


def parse_hostport(spec: str):
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen address {spec!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
