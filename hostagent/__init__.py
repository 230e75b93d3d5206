"""hostagent: a XenAPI host agent for Xen dom0."""

__version__ = "0.1.0"
