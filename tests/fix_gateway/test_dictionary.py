import pytest

from tickline.fix_gateway.codec import encode, parse
from tickline.fix_gateway.dictionary import (
    DictionaryError, SessionRejectReason as R, ValidationConfig, ValidationError, Validator, load_dictionary,
)

HDR = [(49, "C"), (56, "S"), (34, 2), (52, "20260101-12:00:00.000")]


def msg(begin, mt, body, hdr=HDR):
    return parse(encode(begin, [(35, mt)] + hdr + body))


NOS44 = [(11, "O1"), (55, "IBM"), (54, "1"), (60, "20260101-12:00:00.000"), (38, "100"), (40, "2"), (44, "10.5")]


@pytest.fixture(scope="module")
def fix44():
    return Validator(load_dictionary("FIX44"))


def test_loads_versions():
    d42, d44 = load_dictionary("FIX42"), load_dictionary("FIX44")
    t11, sp2 = load_dictionary("FIXT11"), load_dictionary("FIX50SP2")
    assert (d42.begin_string, d44.begin_string, t11.begin_string, sp2.begin_string) == (
        "FIX.4.2", "FIX.4.4", "FIXT.1.1", "FIX.5.0SP2")
    assert d44.messages["D"].name == "NewOrderSingle" and d44.messages["0"].category == "admin"
    assert "A" in t11.messages and "D" not in t11.messages and "8" in sp2.messages
    assert d44.fields_by_name["Side"].values >= {"1", "2"}
    # ExecTransType exists in 4.2's ExecutionReport and not in 4.4's
    assert 20 in d42.messages["8"].layout.required and 20 not in d44.messages["8"].layout.fields
    # components are flattened: Instrument's fields sit in the 4.4 NewOrderSingle, none of them required
    assert d44.messages["D"].layout.required == {11, 54, 60, 40}
    assert {55, 48, 22} <= d44.messages["D"].layout.fields
    assert 55 in d42.messages["D"].layout.required


def test_valid_new_order_single_passes(fix44):
    fix44.validate(msg("FIX.4.4", "D", NOS44))


@pytest.mark.parametrize("body,reason,tag", [
    ([t for t in NOS44 if t[0] != 54], R.REQUIRED_TAG_MISSING, 54),
    ([(54, "Z") if t[0] == 54 else t for t in NOS44], R.VALUE_INCORRECT, 54),
    ([(38, "abc") if t[0] == 38 else t for t in NOS44], R.INCORRECT_DATA_FORMAT, 38),
    ([(60, "2026-01-01") if t[0] == 60 else t for t in NOS44], R.INCORRECT_DATA_FORMAT, 60),
    (NOS44 + [(4999, "x")], R.INVALID_TAG_NUMBER, 4999),
    (NOS44 + [(108, "30")], R.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, 108),
    (NOS44 + [(55, "IBM")], R.TAG_APPEARS_MORE_THAN_ONCE, 55),
    ([(44, "") if t[0] == 44 else t for t in NOS44], R.TAG_WITHOUT_VALUE, 44),
])
def test_rejects_with_reason_and_tag(fix44, body, reason, tag):
    with pytest.raises(ValidationError) as e:
        fix44.validate(msg("FIX.4.4", "D", body))
    assert (e.value.reason, e.value.tag) == (reason, tag)
    assert f"fault=remote reason={reason} tag={tag}" in str(e.value)


def test_invalid_msgtype(fix44):
    with pytest.raises(ValidationError) as e:
        fix44.validate(msg("FIX.4.4", "ZZ", []))
    assert (e.value.reason, e.value.tag) == (R.INVALID_MSGTYPE, 35)


def test_user_defined_fields_allowed_by_default(fix44):
    fix44.validate(msg("FIX.4.4", "D", NOS44 + [(5001, "x")]))


def test_repeating_groups_counted(fix44):
    parties = [(453, "2"), (448, "P1"), (447, "D"), (452, "1"), (448, "P2"), (447, "D"), (452, "3")]
    fix44.validate(msg("FIX.4.4", "D", NOS44 + parties))
    with pytest.raises(ValidationError) as e:
        fix44.validate(msg("FIX.4.4", "D", NOS44 + [(453, "3")] + parties[1:]))
    assert (e.value.reason, e.value.tag) == (R.INCORRECT_NUM_IN_GROUP_COUNT, 453)


@pytest.mark.parametrize("count", ["0.5", "\u00b2", "+1", "-1", "x"])
@pytest.mark.parametrize("check_types", [True, False])
def test_a_group_count_that_is_not_a_number_is_a_format_reject(count, check_types):
    # The count decides how the rest of the message is read, so it is checked
    # even with type checks off (it used to escape as a ValueError there).
    v = Validator(load_dictionary("FIX44"), config=ValidationConfig(check_types=check_types))
    with pytest.raises(ValidationError) as e:
        v.validate(msg("FIX.4.4", "D", NOS44 + [(453, count), (448, "P1"), (447, "D"), (452, "1")]))
    assert (e.value.reason, e.value.tag) == (R.INCORRECT_DATA_FORMAT, 453)

def test_checks_are_configurable():
    lax = Validator(load_dictionary("FIX44"), config=ValidationConfig(check_values=False, check_required=False))
    lax.validate(msg("FIX.4.4", "D", [(54, "Z") if t[0] == 54 else t for t in NOS44 if t[0] != 55]))
    off = Validator(load_dictionary("FIX44"), config=ValidationConfig(enabled=False))
    off.validate(msg("FIX.4.4", "ZZ", [(1, "")]))


def test_fixt_uses_transport_header_and_app_body():
    v = Validator(load_dictionary("FIXT11"), load_dictionary("FIX50SP2"))
    v.validate(msg("FIXT.1.1", "D", NOS44))
    v.validate(msg("FIXT.1.1", "A", [(98, "0"), (108, "30"), (1137, "9")]))
    with pytest.raises(ValidationError) as e:
        v.validate(msg("FIXT.1.1", "A", [(98, "0"), (1137, "9")]))
    assert (e.value.reason, e.value.tag) == (R.REQUIRED_TAG_MISSING, 108)


def test_fix42_execution_report_requires_exec_trans_type():
    v = Validator(load_dictionary("FIX42"))
    er = [(37, "X1"), (17, "E1"), (20, "0"), (150, "2"), (39, "2"), (55, "IBM"), (54, "1"),
          (151, "0"), (14, "100"), (6, "10.5")]
    v.validate(msg("FIX.4.2", "8", er))
    with pytest.raises(ValidationError) as e:
        v.validate(msg("FIX.4.2", "8", [t for t in er if t[0] != 20]))
    assert (e.value.reason, e.value.tag) == (R.REQUIRED_TAG_MISSING, 20)


def test_bad_dictionary_file_names_path(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text("<fix><messages><message name='X' msgtype='X'><field name='Nope' required='Y'/></message></messages></fix>")
    with pytest.raises(DictionaryError, match=f"undefined field: fault=input path={p} field=Nope in=X"):
        load_dictionary(p)
    p2 = tmp_path / "trunc.xml"
    p2.write_text("<fix><fields>")
    with pytest.raises(DictionaryError, match="cannot read FIX dictionary: fault=input"):
        load_dictionary(p2)
