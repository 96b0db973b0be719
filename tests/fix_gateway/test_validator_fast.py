"""The validator's precompiled fast path decides exactly as the reference walk.

``Validator.validate`` first asks a per-MsgType ``_FastPlan`` and falls back
to ``_validate_walk``; these tests feed both random messages (mostly valid,
with one mutation of each kind) and compare the outcome: accepted, or the
same SessionRejectReason and tag.
"""

import pytest
from hypothesis import given, settings, strategies as st

from tickline.fix_gateway import dictionary as dd
from tickline.fix_gateway.codec import FixMessage
from tickline.fix_gateway.dictionary import ValidationConfig, ValidationError, Validator, load_dictionary

HDR = [(8, "FIX.4.4"), (9, "100"), (35, "D"), (49, "C"), (56, "S"), (34, "2"), (52, "20260101-12:00:00.000")]
NOS = [(11, "O1"), (55, "IBM"), (54, "1"), (60, "20260101-12:00:00.000"), (38, "100"), (40, "2"), (44, "10.5")]
TRAILER = [(10, "000")]

values = st.one_of(
    st.sampled_from(["", "1", "2", "-1", "0.5", ".5", "5.", "-", ".", "1.2.3", "+1", "Y", "N", "AB", "x",
                     "20260101-12:00:00", "20260101-12:00:00.123456789", "20260101-12:00:00.1234567890",
                     "20261301-12:00:00.000", "20260101-24:00:00.000", "20260101-12:00:60", "2026010112:00:00",
                     "\u00b2", "\u0663", "1 2", "A B"]),
    st.text(max_size=6),
)
tags = st.one_of(st.sampled_from([11, 55, 54, 60, 38, 40, 44, 59, 1, 21, 18, 99, 126, 453, 448, 447, 452,
                                  34, 52, 49, 56, 43, 97, 122, 58, 5000, 9999, 20, 999999]),
                 st.integers(min_value=1, max_value=1000))
mutations = st.lists(st.tuples(st.sampled_from(["set", "add", "drop", "dup"]), tags, values), max_size=3)


def outcome(fn, msg):
    try:
        fn(msg)
        return None
    except ValidationError as e:
        return (e.reason, e.tag)


def mutate(fields, muts):
    fields = list(fields)
    body = fields[3:-1]
    for kind, tag, value in muts:
        if kind == "set":
            body = [(t, value if t == tag else v) for t, v in body]
        elif kind == "add":
            body.append((tag, value))
        elif kind == "drop":
            body = [(t, v) for t, v in body if t != tag]
        elif kind == "dup" and body:
            body.append(body[tag % len(body)])
    return fields[:3] + body + fields[-1:]


configs = [ValidationConfig(), ValidationConfig(check_required=False), ValidationConfig(check_types=False),
           ValidationConfig(check_values=False), ValidationConfig(allow_unknown_fields=True),
           ValidationConfig(allow_user_defined_fields=False)]


@pytest.fixture(scope="module")
def validators():
    d = load_dictionary("FIX44")
    return [Validator(d, d, c) for c in configs]


@given(mutations, st.sampled_from(range(len(configs))), st.sampled_from(["D", "8", "0", "A", "ZZ"]))
@settings(max_examples=400, deadline=None)
def test_fast_path_agrees_with_walk(validators, muts, ci, mt):
    v = validators[ci]
    fields = [(t, mt if t == 35 else val) for t, val in HDR + NOS + TRAILER]
    fields = mutate(fields, muts)
    walk = outcome(lambda x: v._validate_walk(x, x.msg_type), FixMessage(fields))
    assert outcome(v.validate, FixMessage(fields)) == walk  # the Python plan (no index from the parser)
    assert outcome(v.validate, FixMessage(fields, None, first_index(fields))) == walk  # the native check


def first_index(fields):
    idx = {}
    for t, val in fields:
        idx.setdefault(t, val)
    return idx


def test_fast_path_is_used_for_a_valid_order_and_refuses_a_bad_enum(validators):
    v = validators[0]
    good = FixMessage(HDR + NOS + TRAILER)
    v.validate(good)
    assert v._fast["D"] is not None and v._fast["D"].accepts(good.fields)
    bad = FixMessage(mutate(HDR + NOS + TRAILER, [("set", 54, "Z")]))
    assert not v._fast["D"].accepts(bad.fields)
    with pytest.raises(ValidationError, match="tag=54"):
        v.validate(bad)


@given(st.text(max_size=40))
@settings(max_examples=500)
def test_fast_type_checks_accept_a_subset_of_the_reference(value):
    for type_name, fast in dd._FAST_TYPE_CHECKS.items():
        if fast(value):
            assert dd._TYPE_CHECKS[type_name](value), (type_name, value)


@pytest.mark.parametrize("value", ["0", "12", "-3", "1.5", ".5", "5.", "-0.25", "20260101-12:00:00",
                                   "20260101-23:59:60.5", "20260101-12:00:00.123456789"])
def test_fast_type_checks_accept_ordinary_values(value):
    for type_name, fast in dd._FAST_TYPE_CHECKS.items():
        if dd._TYPE_CHECKS[type_name](value) and value.isascii():
            assert fast(value), (type_name, value)


@pytest.mark.skipif(dd._native_check_flat is None, reason="native FIX codec disabled")
@given(st.one_of(st.text(max_size=30), st.sampled_from(["20260101-12:00:00.5", "20260229-23:59:60", "-.5", "5.", "-"])))
@settings(max_examples=500)
def test_native_type_checks_accept_a_subset_of_the_reference(value):
    for type_name, code in dd._NATIVE_TYPE_CODES.items():
        native = dd._native_check_flat({1: value}, 1, frozenset({1}), (), {}, {1: code})
        if native:
            assert value and dd._TYPE_CHECKS[type_name](value), (type_name, value)
        elif value.isascii() and value and dd._TYPE_CHECKS[type_name](value):
            raise AssertionError(f"native refuses an ordinary valid value: type={type_name} value={value!r}")
