"""Derivation of implicit messages and validation of the model (api.py).

Small classes are built by hand here so each rule is seen in isolation; the
last tests run the same checks over the real model.
"""

import pytest

from hostagent.datamodel import types as T
from hostagent.datamodel.api import Api, ModelError, build_api, validate
from hostagent.datamodel.decl import (RO_CONSTRUCTOR, RO_RUNTIME, RW, Relation, cls, field,
                                      message, param)

SMAP = T.MapOf(T.STRING, T.STRING)
COLOUR = T.Enum("colour", ("red", "green"))


def thing(**flags):
    return cls("thing", "A test class.", [
        field("uuid", T.STRING, RO_RUNTIME),
        field("name_label", T.STRING, RW, ""),
        field("other_config", SMAP, RW, {}),
        field("tags", T.SetOf(T.STRING), RW, []),
        field("size", T.INT, RO_CONSTRUCTOR),
        field("runtime_map", SMAP, RO_RUNTIME, {}),
        field("runtime_set", T.SetOf(T.STRING), RO_RUNTIME, []),
        field("colour", COLOUR, RW, "red"),
        field("secret_bit", T.BOOL, RO_RUNTIME, False, internal=True),
    ], **flags)


def entries(c, relations=()):
    return Api((c,), relations).entries


def names(c):
    return {w.split(".", 1)[1] for w in entries(c)}


# ---------------------------------------------------------------------------
# derivation


def test_every_class_gets_record_and_uuid_lookup():
    es = entries(thing())
    rec = es["thing.get_record"]
    assert [p.name for p in rec.params] == ["self"]
    assert rec.params[0].type == T.Ref("thing")
    assert rec.result == T.RecordOf("thing")
    assert es["thing.get_by_uuid"].result == T.Ref("thing")
    assert not rec.async_ and rec.session


def test_rw_map_gets_set_add_to_remove_from():
    es = entries(thing())
    for n in ("get_other_config", "set_other_config", "add_to_other_config",
              "remove_from_other_config"):
        assert f"thing.{n}" in es, n
    add = es["thing.add_to_other_config"]
    assert [(p.name, p.type) for p in add.params] == \
        [("self", T.Ref("thing")), ("key", T.STRING), ("value", T.STRING)]
    rm = es["thing.remove_from_other_config"]
    assert [(p.name, p.type) for p in rm.params] == [("self", T.Ref("thing")), ("key", T.STRING)]
    assert es["thing.set_other_config"].params[1].type == SMAP
    assert "thing.add_other_config" not in es


def test_rw_set_gets_add_remove():
    es = entries(thing())
    for n in ("get_tags", "set_tags", "add_tags", "remove_tags"):
        assert f"thing.{n}" in es, n
    assert [(p.name, p.type) for p in es["thing.add_tags"].params] == \
        [("self", T.Ref("thing")), ("value", T.STRING)]
    assert "thing.add_to_tags" not in es


def test_rw_scalar_gets_set_only():
    ns = names(thing())
    assert {"get_name_label", "set_name_label", "get_colour", "set_colour"} <= ns
    assert not {"add_name_label", "add_to_name_label"} & ns


def test_ro_fields_get_no_setter():
    ns = names(thing())
    for f in ("size", "runtime_map", "runtime_set", "uuid"):
        assert f"get_{f}" in ns
        for prefix in ("set_", "add_", "remove_", "add_to_", "remove_from_"):
            assert f"{prefix}{f}" not in ns, f"{prefix}{f}"


def test_internal_fields_get_no_accessor():
    assert not {n for n in names(thing()) if "secret_bit" in n}


def test_getter_result_is_the_field_type():
    es = entries(thing())
    assert es["thing.get_colour"].result is COLOUR
    assert es["thing.get_runtime_set"].result == T.SetOf(T.STRING)


def test_constructor_classes_get_create_and_destroy():
    es = entries(thing(constructor=True))
    create, destroy = es["thing.create"], es["thing.destroy"]
    assert [(p.name, p.type) for p in create.params] == [("args", T.RecordOf("thing"))]
    assert create.params[0].type.xapi == "thing record"
    assert create.result == T.Ref("thing")
    assert [p.type for p in destroy.params] == [T.Ref("thing")]
    assert destroy.result == T.VOID
    assert create.async_ and destroy.async_
    assert not {"create", "destroy"} & names(thing())


def test_get_all_and_name_label_flags():
    with_all = names(thing())
    assert {"get_all", "get_all_records"} <= with_all
    assert "get_by_name_label" not in with_all
    assert not {"get_all", "get_all_records"} & names(thing(get_all=False))
    es = entries(thing(by_name_label=True))
    lookup = es["thing.get_by_name_label"]
    assert [p.name for p in lookup.params] == ["label"]
    assert lookup.result == T.SetOf(T.Ref("thing"))
    assert es["thing.get_all_records"].result.xapi == "(thing ref -> thing record) map"


def test_explicit_message_overrides_and_keeps_its_declaration():
    m = message("get_record", [], T.STRING, doc="Hand-made.", async_=False)
    c = cls("thing", "A test class.", [field("uuid", T.STRING)], messages=[m])
    e = entries(c)["thing.get_record"]
    assert e.implicit is None and e.message is m and e.result == T.STRING


def test_explicit_message_without_session():
    m = message("hello", [param("who", T.STRING), param("how", T.STRING, "warmly")], T.VOID,
                session=False, async_=False)
    c = cls("thing", "A test class.", [field("uuid", T.STRING)], messages=[m])
    e = entries(c)["thing.hello"]
    assert not e.session and e.required_count == 1


# ---------------------------------------------------------------------------
# validation


def test_validate_accepts_the_sample():
    validate(Api((thing(),), ()))


@pytest.mark.parametrize("fld", [
    field("n", T.INT, RW, "zero"),
    field("n", T.INT, RW, True),
    field("n", T.FLOAT, RW, 1),
    field("n", T.BOOL, RW, 0),
    field("n", COLOUR, RW, "blue"),
    field("n", T.SetOf(T.STRING), RW, {}),
    field("n", SMAP, RW, []),
    field("n", SMAP, RW, {"a": 1}),
    field("n", T.Ref("thing"), RO_RUNTIME, None),
])
def test_validate_rejects_a_bad_default(fld):
    c = cls("thing", "A test class.", [field("uuid", T.STRING), fld])
    with pytest.raises(ModelError, match=r"thing\.n: default"):
        validate(Api((c,), ()))


def test_validate_rejects_duplicate_fields_and_missing_uuid():
    c = cls("thing", "A test class.", [field("uuid", T.STRING), field("uuid", T.STRING)])
    with pytest.raises(ModelError, match="duplicate"):
        validate(Api((c,), ()))
    c = cls("thing", "A test class.", [field("x", T.STRING)])
    with pytest.raises(ModelError, match="without uuid"):
        validate(Api((c,), ()))
    validate(Api((cls("thing", "Unstored.", [field("x", T.STRING)], stored=False),), ()))


def test_validate_rejects_an_unknown_error_code():
    c = cls("thing", "A test class.", [field("uuid", T.STRING)],
            messages=[message("poke", errors=["NO_SUCH_ERROR_CODE_AT_ALL"])])
    with pytest.raises(ModelError, match="unknown error"):
        validate(Api((c,), ()))


def parent_child(child_ref=T.Ref("parent"), kids=T.SetOf(T.Ref("child"))):
    parent = cls("parent", "One side.", [field("uuid", T.STRING), field("kids", kids)])
    child = cls("child", "Many side.", [field("uuid", T.STRING),
                                        field("owner", child_ref, RO_CONSTRUCTOR)])
    return parent, child


def test_validate_accepts_a_good_relation_and_a_one_to_one():
    classes = parent_child()
    validate(Api(classes, (Relation(one=("child", "owner"), many=("parent", "kids")),)))
    classes = parent_child(kids=T.Ref("child"))
    validate(Api(classes, (Relation(one=("child", "owner"), many=("parent", "kids")),)))


@pytest.mark.parametrize("classes, rel, why", [
    (parent_child(), Relation(one=("child", "owner"), many=("parent", "nope")), "missing field"),
    (parent_child(), Relation(one=("child", "owner"), many=("nobody", "kids")), "missing field"),
    (parent_child(child_ref=T.Ref("other")),
     Relation(one=("child", "owner"), many=("parent", "kids")), "is not a parent ref"),
    (parent_child(kids=T.SetOf(T.STRING)),
     Relation(one=("child", "owner"), many=("parent", "kids")), "is not a child ref set"),
    (parent_child(kids=T.SetOf(T.Ref("other"))),
     Relation(one=("child", "owner"), many=("parent", "kids")), "is not a child ref set"),
])
def test_validate_rejects_a_broken_relation(classes, rel, why):
    with pytest.raises(ModelError, match=why):
        validate(Api(classes, (rel,)))


# ---------------------------------------------------------------------------
# the real model


def test_build_api_validates_the_real_model():
    api = build_api()
    assert api.classes and api.relations
    for r in api.relations:
        assert r.one[0] in api.classes and r.many[0] in api.classes


def test_real_model_follows_the_rules():
    api = build_api()
    for c in api.classes.values():
        if not c.stored:
            assert all(e.message is not None for e in api.messages_of(c.name)), c.name
            continue
        for f in c.fields:
            if f.internal:
                continue
            ns = {e.name for e in api.messages_of(c.name)}
            assert f"get_{f.name}" in ns
            setters = {f"set_{f.name}", f"add_to_{f.name}", f"remove_from_{f.name}",
                       f"add_{f.name}", f"remove_{f.name}"}
            derived = {e.name for e in api.messages_of(c.name) if e.implicit and e.message is None}
            if f.qualifier != RW:
                assert not setters & derived, f"{c.name}.{f.name} is read-only"
            elif f.type.kind == "map":
                assert {f"set_{f.name}", f"add_to_{f.name}", f"remove_from_{f.name}"} <= ns
            elif f.type.kind == "set":
                assert {f"set_{f.name}", f"add_{f.name}", f"remove_{f.name}"} <= ns
        if c.constructor:
            create = api.entries[f"{c.name}.create"]
            if create.implicit:
                assert create.params[0].type == T.RecordOf(c.name)


def test_relations_in_the_real_model_pair_ref_with_ref_set():
    api = build_api()
    seen = set()
    for r in api.relations:
        assert r.one not in seen, f"{r.one} drives two relations"
        seen.add(r.one)
        one = api.classes[r.one[0]].field(r.one[1])
        many = api.classes[r.many[0]].field(r.many[1])
        assert one.type == T.Ref(r.many[0])
        assert many.type in (T.SetOf(T.Ref(r.one[0])), T.Ref(r.one[0]))


def test_declared_plain_setter_is_served_generically_and_checked():
    from hostagent.datamodel.api import SET
    from hostagent.datamodel.decl import message, param
    good = cls("Disk", "a disk", [field("uuid", T.STRING), field("name_label", T.STRING, RO_CONSTRUCTOR, "")],
               messages=[message("set_name_label", [param("self", T.Ref("Disk")), param("value", T.STRING)],
                                 doc="rename", sets="name_label")])
    api = Api((good,), ())
    validate(api)
    e = api.entries["Disk.set_name_label"]
    assert e.implicit == SET and e.field.name == "name_label" and e.message is not None
    wrong_type = cls("Disk", "a disk", [field("uuid", T.STRING), field("name_label", T.STRING, RO_CONSTRUCTOR, "")],
                     messages=[message("set_name_label", [param("self", T.Ref("Disk")), param("value", T.INT)],
                                       sets="name_label")])
    with pytest.raises(ModelError):
        validate(Api((wrong_type,), ()))
    no_field = cls("Disk", "a disk", [field("uuid", T.STRING)],
                   messages=[message("set_size", [param("self", T.Ref("Disk")), param("value", T.INT)],
                                     sets="size")])
    with pytest.raises(ModelError):
        validate(Api((no_field,), ()))
