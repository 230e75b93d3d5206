"""SM: one read-only record per storage driver, made from the drivers' declared facts.

`sync_sm_records` runs at every start: the records then say what this host's
drivers can do now (an LVM driver without device-mapper loses VDI_ATTACH), one
record per SR type, stale ones removed.
"""

SM_FIELDS = ("name_label", "name_description", "type", "vendor", "copyright", "version",
             "required_api_version", "configuration", "capabilities", "features",
             "driver_filename")


def sync_sm_records(store, records) -> None:
    """Make the SM table match `records` (dicts from Storage.sm_records())."""
    wanted = {r["type"]: r for r in records}
    with store.transaction():
        seen = set()
        for ref, rec in list(store.all("SM").items()):
            want = wanted.get(rec["type"])
            if want is None or rec["type"] in seen:
                store.delete("SM", ref)
                continue
            seen.add(rec["type"])
            for name in SM_FIELDS:
                if rec[name] != want[name]:
                    store.set("SM", ref, name, want[name])
        for sm_type, want in wanted.items():
            if sm_type not in seen:
                store.create("SM", {name: want[name] for name in SM_FIELDS})


HANDLERS = {}
