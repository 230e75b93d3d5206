"""Reading a link's ethtool settings for tests, by another path than the adapter's.

With the `ethtool` command installed (Debian package ethtool): its output.
Without it: the kernel's feature bitmaps (ETHTOOL_GFEATURES, through
pyroute2) and the link settings, read in a thread that entered the namespace.
"""

import re
import shutil
import subprocess
import threading

FEATURES = {"rx": "rx-checksum", "tx": "tx-checksum-ip-generic", "sg": "tx-scatter-gather",
            "tso": "tx-tcp-segmentation", "gso": "tx-generic-segmentation"}
CLI = {"rx": "rx-checksumming", "tx": "tx-checksumming", "sg": "scatter-gather",
       "tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload"}


def kernel_ethtool(netns, dev: str) -> dict:
    """{rx, tx, sg, tso, gso: bool, speed: int, duplex: "half"|"full", autoneg: bool} of link
    `dev` in namespace `netns` (None: this process's)."""
    if shutil.which("ethtool"):
        return _cli(netns, dev)
    return _bitmaps(netns, dev)


def _cli(netns, dev):
    def run(*args):
        prefix = ["ip", "netns", "exec", netns] if netns else []
        return subprocess.run([*prefix, "ethtool", *args], check=True,
                              capture_output=True, text=True).stdout
    k = run("-k", dev)
    out = {short: re.search(rf"^{name}: (on|off)", k, re.M).group(1) == "on" for short, name in CLI.items()}
    settings = run(dev)
    speed = re.search(r"Speed: (\d+)Mb/s", settings)
    out["speed"] = int(speed.group(1)) if speed else None
    out["duplex"] = re.search(r"Duplex: (\w+)", settings).group(1).lower()
    out["autoneg"] = re.search(r"Auto-negotiation: (\w+)", settings).group(1) == "on"
    return out


def _bitmaps(netns, dev):
    from pyroute2.ethtool import Ethtool
    from pyroute2.netns import setns
    box = {}

    def work():
        if netns:
            setns(netns, flags=0)
        with Ethtool() as tool:
            features = tool.get_features(dev).features
            box["out"] = {short: features[name].enable for short, name in FEATURES.items()}
            mode = tool.get_link_mode(dev)
            box["out"].update(speed=mode.speed, duplex=str(mode.duplex).lower(), autoneg=bool(mode.autoneg))
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return box["out"]
