"""Ref fields kept in step with set fields on the other side.

Each `Relation(one=(cls, ref_field), many=(cls, set_field))` says: whenever an
object's `ref_field` names an object, that object's `set_field` lists it back.
Only the `one` side is ever written; the `many` side follows. A few pairs are
one-to-one, where the `many` side is a plain ref (VLAN.untagged_PIF).
"""

from .decl import Relation

RELATIONS = (
    # VM devices
    Relation(one=("VBD", "VM"), many=("VM", "VBDs")),
    Relation(one=("VIF", "VM"), many=("VM", "VIFs")),
    Relation(one=("console", "VM"), many=("VM", "consoles")),

    # placement and lineage of VMs
    Relation(one=("VM", "resident_on"), many=("host", "resident_VMs")),
    Relation(one=("VM", "snapshot_of"), many=("VM", "snapshots")),
    Relation(one=("VM", "parent"), many=("VM", "children")),

    # storage
    Relation(one=("VBD", "VDI"), many=("VDI", "VBDs")),
    Relation(one=("VDI", "SR"), many=("SR", "VDIs")),
    Relation(one=("VDI", "snapshot_of"), many=("VDI", "snapshots")),
    Relation(one=("VDI", "metadata_of_pool"), many=("pool", "metadata_VDIs")),
    Relation(one=("PBD", "SR"), many=("SR", "PBDs")),
    Relation(one=("PBD", "host"), many=("host", "PBDs")),

    # networking
    Relation(one=("VIF", "network"), many=("network", "VIFs")),
    Relation(one=("PIF", "network"), many=("network", "PIFs")),
    Relation(one=("PIF", "host"), many=("host", "PIFs")),
    Relation(one=("PIF", "bond_slave_of"), many=("Bond", "slaves")),
    Relation(one=("Bond", "master"), many=("PIF", "bond_master_of")),
    Relation(one=("VLAN", "tagged_PIF"), many=("PIF", "VLAN_slave_of")),
    Relation(one=("VLAN", "untagged_PIF"), many=("PIF", "VLAN_master_of")),  # one-to-one

    # hosts and tasks
    Relation(one=("host_cpu", "host"), many=("host", "host_CPUs")),
    Relation(one=("task", "subtask_of"), many=("task", "subtasks")),
)
