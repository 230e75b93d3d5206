"""VIF traffic filters in the kernel's bridge netfilter (nft, Debian's nftables): the only module
that runs nft.

A VIF's `locking_mode` becomes rules on the frames its backend link puts on a
bridge, in one nftables table of the bridge family, `bridge hostagent`:

- maps `from_vif` and `to_vif` (interface name -> verdict), looked up by the
  base chains `forward` and `input` (frames coming in from a port) and
  `forward` and `output` (frames going out to a port);
- `locked`: the backend's name maps to a jump into its own chain `from-<name>`,
  which drops frames whose source MAC is not the VIF's, lets through ARP whose
  sender is the VIF's MAC and one of its IPv4 addresses, IPv4 from those
  addresses and IPv6 from its IPv6 addresses, and drops everything else (so a
  locked VIF with no address passes nothing, as xapi documents);
- `disabled`: the name maps to drop both ways;
- `unlocked`: no entry, no chain.

pyroute2's nftables module only builds a few expressions (the rest would be raw
netlink attributes written by hand), so the rules go to `nft -j -f -` as one JSON
batch, which the kernel applies atomically. `rules_for` is that batch's pure
part. With a namespace, nft runs in a thread that entered it (a child process
inherits the calling thread's namespace). nft's failures become FilterError
(FilterNotSupported where nft is missing or the kernel has no bridge nf_tables).
"""

import json
import logging
import subprocess

from .netlink.errors import in_netns

log = logging.getLogger("hostagent.filters")

NFT = "nft"
FAMILY = "bridge"
TABLE = "hostagent"
MODES = ("locked", "disabled", "unlocked")


class FilterError(Exception):
    """nft refused or failed; the message is nft's."""


class FilterNotSupported(FilterError):
    """No nft program, or a kernel without nf_tables for bridges."""


def chain_name(name: str) -> str:
    return f"from-{name}"


def _obj(kind: str, **values) -> dict:
    return {kind: {"family": FAMILY, "table": TABLE, **values}}


def _match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _set(values) -> dict:
    return {"set": sorted(values)}


def base() -> list:
    """The table, its maps and base chains: made once, when the table is missing."""
    cmds = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    for m in ("from_vif", "to_vif"):
        cmds.append({"add": _obj("map", name=m, type="ifname", map="verdict")})
    for hook in ("forward", "input", "output"):
        cmds.append({"add": _obj("chain", name=hook, type="filter", hook=hook, prio=0, policy="accept")})
    lookups = {"forward": [("iifname", "from_vif"), ("oifname", "to_vif")],
               "input": [("iifname", "from_vif")], "output": [("oifname", "to_vif")]}
    for hook, pairs in lookups.items():
        for key, m in pairs:
            cmds.append({"add": _obj("rule", chain=hook, expr=[
                {"vmap": {"key": {"meta": {"key": key}}, "data": f"@{m}"}}])})
    return cmds


def locked_rules(name: str, mac: str, ipv4, ipv6) -> list:
    """The rules of a locked VIF's chain (see the module doc), in order."""
    chain, mac = chain_name(name), mac.lower()
    rules = [[_match(_payload("ether", "saddr"), mac, "!="), {"drop": None}]]
    if ipv4:
        rules.append([_match(_payload("ether", "type"), "arp"), _match(_payload("arp", "saddr ether"), mac),
                      _match(_payload("arp", "saddr ip"), _set(ipv4)), {"accept": None}])
        rules.append([_match(_payload("ip", "saddr"), _set(ipv4)), {"accept": None}])
    if ipv6:
        rules.append([_match(_payload("ip6", "saddr"), _set(ipv6)), {"accept": None}])
    rules.append([{"drop": None}])
    return [{"add": _obj("rule", chain=chain, expr=expr)} for expr in rules]


def rules_for(name: str, mode: str, mac: str, ipv4=(), ipv6=(), current: dict | None = None) -> list:
    """The batch that gives backend link `name` the filter of `mode` ("locked", "disabled" or
    "unlocked"), from `current` (what `state()` read; None: no table yet)."""
    if mode not in MODES:
        raise ValueError(f"unknown locking mode {mode!r}")
    cmds = base() if current is None else []
    current = current or {"from_vif": {}, "to_vif": {}, "chains": set()}
    for m in ("from_vif", "to_vif"):
        if name in current[m]:
            cmds.append({"delete": _obj("element", name=m, elem=[name])})
    chain = chain_name(name)
    if mode == "locked":
        cmds.append({"add": _obj("chain", name=chain)})
        if chain in current["chains"]:
            cmds.append({"flush": _obj("chain", name=chain)})
        cmds += locked_rules(name, mac, ipv4, ipv6)
        cmds.append({"add": _obj("element", name="from_vif", elem=[[name, {"jump": {"target": chain}}]])})
    else:
        if chain in current["chains"]:
            cmds.append({"delete": _obj("chain", name=chain)})
        if mode == "disabled":
            for m in ("from_vif", "to_vif"):
                cmds.append({"add": _obj("element", name=m, elem=[[name, {"drop": None}]])})
    return cmds


def _nft(args: list, stdin: str | None, netns: str | None) -> str:
    def work():
        return subprocess.run([NFT, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False)
    try:
        done = in_netns(netns, work)
    except FileNotFoundError:
        raise FilterNotSupported("nft is not installed (Debian package nftables)") from None
    except (OSError, subprocess.SubprocessError) as e:
        raise FilterError(f"nft: {e}") from None
    if done.returncode != 0:
        message = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        kind = FilterNotSupported if "Operation not supported" in message else FilterError
        raise kind(f"nft: {message or f'exit status {done.returncode}'}")
    return done.stdout


def state(netns: str | None = None) -> dict | None:
    """What the table holds: {"from_vif": {name: verdict}, "to_vif": {...}, "chains": {names}},
    or None when there is no table."""
    try:
        out = _nft(["-j", "list", "table", FAMILY, TABLE], None, netns)
    except FilterNotSupported:
        raise
    except FilterError as e:
        if "No such file or directory" in str(e):
            return None
        raise
    found = {"from_vif": {}, "to_vif": {}, "chains": set()}
    for item in json.loads(out).get("nftables", []):
        if "map" in item and item["map"]["name"] in ("from_vif", "to_vif"):
            for key, verdict in item["map"].get("elem", []):
                found[item["map"]["name"]][key] = verdict
        elif "chain" in item and "hook" not in item["chain"]:
            found["chains"].add(item["chain"]["name"])
    return found


def apply(name: str, mode: str, mac: str, ipv4=(), ipv6=(), netns: str | None = None) -> None:
    """Backend link `name` filtered as `mode` says (idempotent; one atomic batch). Unlocked
    needs nothing where nft or the kernel's support is missing: there is no filter to take off."""
    try:
        current = state(netns)
    except FilterNotSupported:
        if mode == "unlocked":
            return
        raise
    cmds = rules_for(name, mode, mac, ipv4, ipv6, current)
    if cmds:
        _nft(["-j", "-f", "-"], json.dumps({"nftables": cmds}), netns)


def remove(name: str, netns: str | None = None) -> None:
    """No filter on `name` any more (nothing to do when it has none, nor without nft)."""
    try:
        current = state(netns)
    except FilterNotSupported:
        return
    if current is None:
        return
    cmds = rules_for(name, "unlocked", "", current=current)
    if cmds:
        _nft(["-j", "-f", "-"], json.dumps({"nftables": cmds}), netns)


def filtered(netns: str | None = None) -> list:
    """The names of the backend links that have a filter (none without nft)."""
    try:
        current = state(netns)
    except FilterNotSupported:
        return []
    if current is None:
        return []
    return sorted(set(current["from_vif"]) | set(current["to_vif"]))


class VifFilters:
    """The functions above bound to one namespace and run off the reactor by `run(fn, *args)`
    (awaited: `await filters.apply("vif3.0", "locked", mac, ["10.0.0.1"], [])`)."""

    def __init__(self, netns: str | None = None, run=None):
        self.netns = netns
        self._run = run

    def _call(self, fn, *args):
        def work():
            return fn(*args, netns=self.netns)
        if self._run is None:
            async def now():
                return work()
            return now()
        return self._run(work)

    def apply(self, name: str, mode: str, mac: str, ipv4=(), ipv6=()):
        return self._call(apply, name, mode, mac, list(ipv4), list(ipv6))

    def remove(self, name: str):
        return self._call(remove, name)

    def filtered(self):
        return self._call(filtered)
