"""StorageError -> XenAPI error: uuids become refs where the store knows them."""

import pytest

from hostagent.actions.storage_errors import api_error
from hostagent.backends.storage import StorageError
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store

VDI_UUID = "11111111-2222-4333-8444-555555555555"
SR_UUID = "66666666-7777-4888-8999-aaaaaaaaaaaa"


@pytest.fixture(scope="module")
def store():
    s = Store(build_api())
    with s.transaction():
        sr = s.create("SR", {"uuid": SR_UUID})
        s.create("VDI", {"uuid": VDI_UUID, "SR": sr})
    return s


def refs(store):
    return store.by_uuid("SR", SR_UUID), store.by_uuid("VDI", VDI_UUID)


def test_vdi_in_use_names_the_ref(store):
    _, vdi = refs(store)
    e = api_error(store, StorageError("VDI_IN_USE", [VDI_UUID, "destroy"]))
    assert e.description == ["VDI_IN_USE", vdi, "destroy"]


def test_unknown_uuid_is_kept(store):
    other = "00000000-0000-4000-8000-000000000000"
    assert api_error(store, StorageError("VDI_READONLY", [other])).description == \
        ["VDI_READONLY", other]


def test_vdi_missing_names_sr_and_vdi(store):
    sr, vdi = refs(store)
    e = api_error(store, StorageError("VDI_MISSING", [SR_UUID, VDI_UUID]))
    assert e.description == ["VDI_MISSING", sr, vdi]


def test_cancelled_names_the_task(store):
    e = api_error(store, StorageError("TASK_CANCELLED", ["vol_copy_to"]), task="OpaqueRef:t")
    assert e.description == ["TASK_CANCELLED", "OpaqueRef:t"]


@pytest.mark.parametrize("code,params", [
    ("SR_BACKEND_FAILURE_73", ["", "NFS mount error [opterr=x]", "stderr"]),
    ("SR_FULL", ["100", "50"]),
    ("SR_UNKNOWN_DRIVER", ["zfs"]),
])
def test_other_codes_pass_through(store, code, params):
    assert api_error(store, StorageError(code, params)).description == [code, *params]


def test_malformed_errors_become_internal_errors(store):
    e = api_error(store, StorageError("SR_FULL", ["only one"]))
    assert e.code == "INTERNAL_ERROR" and "SR_FULL" in e.params[0]
    e = api_error(store, StorageError("NO_SUCH_CODE", []))
    assert e.code == "INTERNAL_ERROR" and "NO_SUCH_CODE" in e.params[0]
