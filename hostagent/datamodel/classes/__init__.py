"""Every class the agent models, in documentation order."""

from .session import SESSION
from .task import TASK
from .event import EVENT
from .pool import POOL
from .host import HOST, HOST_METRICS, HOST_CPU
from .vm import VM
from .vm_metrics import VM_METRICS, VM_GUEST_METRICS, CONSOLE
from .storage import SR, SM, PBD
from .disk import VDI, VBD, VBD_METRICS
from .network import NETWORK, VIF, VIF_METRICS
from .link import PIF, PIF_METRICS, VLAN, BOND
from .misc import MESSAGE, SECRET, BLOB, USER

CLASSES = (
    SESSION, TASK, EVENT, POOL, HOST, HOST_METRICS, HOST_CPU, VM, VM_METRICS, VM_GUEST_METRICS,
    CONSOLE, SR, SM, VDI, VBD, VBD_METRICS, PBD, NETWORK, VIF, VIF_METRICS, PIF, PIF_METRICS, VLAN,
    BOND, MESSAGE, SECRET, BLOB, USER,
)
