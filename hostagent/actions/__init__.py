"""Hand-written behaviour, one module per class.

Each module exposes `HANDLERS`, a mapping from wire name to a function
`(ctx, *args)` (plain or `async def`). `all_handlers()` gathers them for the
dispatcher, which refuses to start if a declared message has none.
"""

from . import host_evacuate, vm_migrate
from . import (bond, event, host_enabled, network, pbd, pif, pool, pool_emergency, pool_handover, pool_vlan,
               session, sm, sr, task, vbd, vdi, vif, vlan, vm, vm_copies, vm_devices, vm_power, vm_settings,
               xva_import)


def all_handlers():
    handlers = {}
    for module in (vm_migrate, host_evacuate, session, task, event, vm, vm_power, vm_copies, vm_settings, vm_devices, sr, sm, pbd, vdi,
                   vbd, vif, network, pif, vlan, bond, pool, pool_emergency, pool_handover, pool_vlan,
                   xva_import, host_enabled):
        overlap = handlers.keys() & module.HANDLERS.keys()
        if overlap:
            raise LookupError(f"messages implemented twice: {sorted(overlap)}")
        handlers.update(module.HANDLERS)
    return handlers
