"""Which driver serves which SR type; the agent builds SM records from ``info()``."""

from sm.errors import UnknownDriver


class Registry:
    """An immutable table of driver classes keyed by their declared type."""

    def __init__(self, drivers, runner=None):
        self._drivers = {}
        for cls in drivers:
            kind = cls.info.type
            if kind in self._drivers:
                raise ValueError(f"two drivers declare type {kind!r}")
            self._drivers[kind] = cls
        # Used only to ask drivers what this host can do (device-mapper for LVM).
        self.runner = runner

    def get(self, type: str):
        """The driver class for an SR type; UnknownDriver (SR_UNKNOWN_DRIVER) if none."""
        try:
            return self._drivers[type]
        except KeyError:
            raise UnknownDriver(type) from None

    def types(self) -> list[str]:
        return sorted(self._drivers)

    def info(self) -> list:
        """Every driver's DriverInfo as this host can honour it, sorted by type."""
        return [self._drivers[t].host_info(self.runner) for t in self.types()]

    def __contains__(self, type: str) -> bool:
        return type in self._drivers


def default_registry(runner=None) -> Registry:
    """The drivers shipped with sm: file, ext, nfs, lvm, iso."""
    from sm.drivers.filesr import ExtDriver, FileDriver
    from sm.drivers.isosr import IsoDriver
    from sm.drivers.lvmsr import LvmDriver
    from sm.drivers.nfssr import NfsDriver
    return Registry([FileDriver, ExtDriver, NfsDriver, LvmDriver, IsoDriver], runner)
