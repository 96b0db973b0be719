import pytest

from tickline.fix_gateway.bridge import (
    BridgeReject, CancelOrder, CxlRejResponseTo, ExecType, ExecutionReport, FixBridge, NewOrder, OrdStatus, OrdType,
    OrderReject, RejectReason, ReplaceOrder, Side, TimeInForce, TranslationError, from_fix, to_fix,
)
from tickline.fix_gateway.codec import encode, parse
from tickline.fix_gateway.dictionary import ValidationConfig, Validator, load_dictionary
from tickline.venue.exchange_sim import ExchangeSim
from tickline.fix_gateway.io import AcceptorConfig, FixAcceptor, FixInitiator
from tickline.fix_gateway.session import ApplicationMessage, LoggedOn, RejectReceived, SessionConfig, utc_timestamp
from tickline.transport.agent import CompositeAgent

T0 = 1767268800.0
TS0 = "20260101-12:00:00.000"
NS0 = int(T0 * 1e9)


def fix(mt, body, begin="FIX.4.4"):
    return parse(encode(begin, [(35, mt), (49, "C"), (56, "G"), (34, 7), (52, TS0)] + body))


NOS = [(11, "O1"), (1, "ACC"), (55, "IBM"), (54, "1"), (60, TS0), (38, "100"), (40, "2"), (44, "10.25"), (59, "1")]


def test_new_order_single_translates_field_for_field():
    assert from_fix(fix("D", NOS), T0) == NewOrder("O1", "ACC", "IBM", Side.BUY, OrdType.LIMIT, TimeInForce.GOOD_TILL_CANCEL,
                                                   10_250_000_000, None, 100, NS0, None)


def test_cancel_and_replace_translate():
    assert from_fix(fix("F", [(11, "C1"), (41, "O1"), (55, "IBM"), (54, "2"), (60, TS0)]), T0) == \
        CancelOrder("C1", "O1", "IBM", Side.SELL, NS0)
    assert from_fix(fix("G", [(11, "R1"), (41, "O1"), (55, "IBM"), (54, "1"), (60, TS0), (38, "200"), (40, "1")]), T0) == \
        ReplaceOrder("R1", "O1", "IBM", Side.BUY, OrdType.MARKET, TimeInForce.DAY, None, 200, NS0)


@pytest.mark.parametrize("mt,body,kind,reason,tag", [
    ("E", [], "business", 3, 35),                                                        # unsupported message type
    ("D", [(11, "X" * 21)] + NOS[1:], "business", 0, 11),                                # ClOrdID longer than the schema's 20
    ("D", [t for t in NOS if t[0] != 44], "business", 5, 44),                            # limit order without price
    ("D", [(38, "abc") if t[0] == 38 else t for t in NOS], "session", 6, 38),            # malformed quantity
    ("D", [(38, "10.5") if t[0] == 38 else t for t in NOS], "business", 0, 38),          # fractional quantity
    ("D", [(44, "1.0000000001") if t[0] == 44 else t for t in NOS], "business", 0, 44),  # finer than 10^-9
    ("D", [(54, "5") if t[0] == 54 else t for t in NOS], "business", 0, 54),             # sell short: not in the schema
    ("D", [t for t in NOS if t[0] != 55], "session", 1, 55),                             # no symbol
])
def test_untranslatable_messages(mt, body, kind, reason, tag):
    with pytest.raises(TranslationError) as e:
        from_fix(fix(mt, body), T0)
    assert (e.value.kind, e.value.reason, e.value.tag) == (kind, reason, tag)
    assert f"fault=remote kind={kind} reason={reason} tag={tag}" in str(e.value)


VERSIONS = {"FIX.4.2": ("FIX42", None), "FIX.4.4": ("FIX44", None), "FIXT.1.1": ("FIXT11", "FIX50SP2")}


def validator(begin):
    t, a = VERSIONS[begin]
    return Validator(load_dictionary(t), load_dictionary(a) if a else None, ValidationConfig())


def er(exec_type, status, leaves, cum, last_qty=0, last_px=None, reason=None, orig=""):
    return ExecutionReport(42, 7, "O1", "IBM", Side.BUY, exec_type, status, 10_250_000_000, last_px, last_qty,
                           leaves, cum, 10_250_000_000 if cum else None, NS0, reason, "", orig)


REPORTS = {
    "ack": er(ExecType.NEW, OrdStatus.NEW, 100, 0),
    "partial": er(ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 60, 40, 40, 10_250_000_000),
    "fill": er(ExecType.TRADE, OrdStatus.FILLED, 0, 100, 60, 10_250_000_000),
    "canceled": er(ExecType.CANCELED, OrdStatus.CANCELED, 0, 0, orig="O0"),
    "replaced": er(ExecType.REPLACED, OrdStatus.REPLACED, 100, 0, orig="O0"),
    "rejected": er(ExecType.REJECTED, OrdStatus.REJECTED, 0, 0, reason=RejectReason.INVALID_QUANTITY),
    "cxl_reject": OrderReject(None, "C1", "O1", OrdStatus.REJECTED, CxlRejResponseTo.CANCEL, RejectReason.DUPLICATE_ORDER, NS0, "no"),
}


@pytest.mark.parametrize("begin", list(VERSIONS))
@pytest.mark.parametrize("name", list(REPORTS))
def test_reports_are_valid_for_each_version(begin, name):
    v = validator(begin)
    mt, fields = to_fix(REPORTS[name], begin, v.app)
    msg = parse(encode(begin, [(35, mt), (49, "G"), (56, "C"), (34, 1), (52, TS0)] + fields))
    v.validate(msg)  # raises if the dictionary disagrees
    if mt == "8":
        for tag in (37, 17, 14, 151, 6):
            assert tag in msg, tag
        assert (20 in msg) == (begin == "FIX.4.2")


def test_fill_exec_type_per_version():
    full, part = REPORTS["fill"], REPORTS["partial"]
    get = lambda rep, b: dict(to_fix(rep, b)[1])
    assert (get(full, "FIX.4.2")[150], get(part, "FIX.4.2")[150]) == ("2", "1")
    assert (get(full, "FIX.4.4")[150], get(part, "FIXT.1.1")[150]) == ("F", "F")
    assert get(full, "FIX.4.4")[31] == "10.25" and get(full, "FIX.4.4")[6] == "10.25"
    assert get(REPORTS["replaced"], "FIX.4.4")[39] == "0" and get(REPORTS["replaced"], "FIX.4.2")[39] == "5"
    assert dict(to_fix(REPORTS["rejected"], "FIX.4.4", load_dictionary("FIX44"))[1])[103] == "13"
    assert dict(to_fix(REPORTS["rejected"], "FIX.4.2", load_dictionary("FIX42"))[1])[103] == "0"


# -- exchange simulator -----------------------------------------------------------------

def sim(**kw):
    return ExchangeSim(clock_ns=lambda: NS0, **kw)


def drain(s):
    out = []
    s.poll(lambda sid, r: out.append((sid, r)), 1000)
    return out


def nos(cid, side, qty, px=None, ot=OrdType.LIMIT, tif=TimeInForce.DAY, sym="IBM"):
    return NewOrder(cid, "", sym, side, ot, tif, px, None, qty, NS0)


def test_sim_price_time_priority_and_partial_fills():
    s = sim()
    s.offer("A", nos("S1", Side.SELL, 50, 101))
    s.offer("A", nos("S2", Side.SELL, 50, 100))
    s.offer("B", nos("S3", Side.SELL, 50, 100))  # same price as S2, later: fills after S2
    drain(s)
    s.offer("C", nos("B1", Side.BUY, 120, 101))
    fills = [(sid, r.cl_ord_id, r.last_quantity, r.last_price, r.ord_status) for sid, r in drain(s)
             if isinstance(r, ExecutionReport) and r.exec_type is ExecType.TRADE]
    assert fills == [
        ("C", "B1", 50, 100, OrdStatus.PARTIALLY_FILLED), ("A", "S2", 50, 100, OrdStatus.FILLED),
        ("C", "B1", 50, 100, OrdStatus.PARTIALLY_FILLED), ("B", "S3", 50, 100, OrdStatus.FILLED),
        ("C", "B1", 20, 101, OrdStatus.FILLED), ("A", "S1", 20, 101, OrdStatus.PARTIALLY_FILLED),
    ]


def test_sim_market_ioc_fok_cancel_replace():
    s = sim()
    s.offer("A", nos("S1", Side.SELL, 30, 100))
    s.offer("C", nos("M1", Side.BUY, 50, ot=OrdType.MARKET))
    reps = [r for _, r in drain(s)]
    assert reps[-1].exec_type is ExecType.CANCELED and reps[-1].cum_quantity == 30  # remainder canceled
    s.offer("A", nos("S2", Side.SELL, 10, 100))
    s.offer("C", nos("F1", Side.BUY, 20, 100, tif=TimeInForce.FILL_OR_KILL))
    reps = [r for _, r in drain(s)]
    assert [(r.cl_ord_id, r.exec_type) for r in reps][-1] == ("F1", ExecType.CANCELED) and \
        not any(r.exec_type is ExecType.TRADE for r in reps)
    s.offer("A", ReplaceOrder("S2b", "S2", "IBM", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, 99, 10, NS0))
    [(_, rep)] = drain(s)
    assert (rep.exec_type, rep.cl_ord_id, rep.orig_cl_ord_id, rep.price) == (ExecType.REPLACED, "S2b", "S2", 99)
    s.offer("A", CancelOrder("X1", "S2b", "IBM", Side.SELL, NS0))
    [(_, rep)] = drain(s)
    assert (rep.exec_type, rep.cl_ord_id, rep.orig_cl_ord_id, rep.leaves_quantity) == (ExecType.CANCELED, "X1", "S2b", 0)
    s.offer("A", CancelOrder("X2", "NOPE", "IBM", Side.SELL, NS0))
    [(_, rej)] = drain(s)
    assert isinstance(rej, OrderReject) and rej.reject_reason is RejectReason.UNKNOWN_ORDER
    s.offer("A", nos("S1", Side.SELL, 1, 100))
    [(_, dup)] = drain(s)
    assert dup.exec_type is ExecType.REJECTED and dup.reject_reason is RejectReason.DUPLICATE_ORDER


@pytest.mark.parametrize("new_id", ["S2", "S1", "GONE"])  # another live order's, its own, an ended order's
def test_sim_refuses_a_replace_under_a_clordid_already_used(new_id):
    s = sim()
    s.offer("A", nos("S1", Side.SELL, 10, 101))
    s.offer("A", nos("S2", Side.SELL, 10, 102))
    s.offer("A", nos("GONE", Side.SELL, 10, 103))
    s.offer("A", CancelOrder("X0", "GONE", "IBM", Side.SELL, NS0))
    drain(s)
    s.offer("A", ReplaceOrder(new_id, "S1", "IBM", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, 100, 10, NS0))
    [(_, rej)] = drain(s)
    assert isinstance(rej, OrderReject) and rej.reject_reason is RejectReason.DUPLICATE_ORDER
    assert (rej.cl_ord_id, rej.orig_cl_ord_id, rej.ord_status) == (new_id, "S1", OrdStatus.NEW)
    # both orders are still live under their own ClOrdIDs, at their own prices
    s.offer("B", nos("B1", Side.BUY, 20, 102))
    fills = [(r.cl_ord_id, r.last_price) for sid, r in drain(s) if sid == "A" and r.exec_type is ExecType.TRADE]
    assert fills == [("S1", 101), ("S2", 102)]

def test_sim_modes():
    s = sim(modes={"AF": "auto-fill", "RS": "rest"})
    s.offer("A", nos("1", Side.BUY, 10, 5_000_000_000, sym="AF"))
    assert [(r.exec_type, r.ord_status, r.last_quantity) for _, r in drain(s)] == [
        (ExecType.NEW, OrdStatus.NEW, 0), (ExecType.TRADE, OrdStatus.FILLED, 10)]
    s.offer("A", nos("2", Side.BUY, 10, 100, sym="RS"))
    s.offer("B", nos("3", Side.SELL, 10, 100, sym="RS"))
    assert [r.exec_type for _, r in drain(s)] == [ExecType.NEW, ExecType.NEW]  # resting, never matched
    with pytest.raises(ValueError, match="fault=config key=modes symbol=X value='fast'"):
        sim(modes={"X": "fast"})
    s = sim(default_mode="fill-only")
    s.offer("A", nos("4", Side.SELL, 7, 100))
    assert [(r.exec_type, r.ord_status, r.last_quantity, r.leaves_quantity) for _, r in drain(s)] == [
        (ExecType.TRADE, OrdStatus.FILLED, 7, 0)]  # one report: the fill, no ack
    s.offer("A", nos("5", Side.SELL, 7, ot=OrdType.MARKET))
    [(_, rej)] = drain(s)
    assert rej.exec_type is ExecType.REJECTED and rej.text == "fill-only venue needs a limit price"


@pytest.mark.parametrize("mode", ["auto-fill", "fill-only"])
def test_sim_fill_at_limit_reports_field_for_field(mode):
    s = sim(modes={"AF": mode}, default_mode="match")
    s.offer("A", nos("F1", Side.SELL, 7, -2_500_000_000, sym="AF"))  # a negative price (spreads) fills as well
    s.offer("A", nos("M1", Side.BUY, 3, 10_000_000_000))  # the other symbols keep matching, ids go on
    ack = ExecutionReport(1, 1, "F1", "AF", Side.SELL, ExecType.NEW, OrdStatus.NEW, -2_500_000_000, None, 0, 7, 0,
                          None, NS0, None, "", "")
    fill = ExecutionReport(1, 2 if mode == "auto-fill" else 1, "F1", "AF", Side.SELL, ExecType.TRADE, OrdStatus.FILLED,
                           -2_500_000_000, -2_500_000_000, 7, 0, 7, -2_500_000_000, NS0, None, "", "")
    resting = ExecutionReport(2, fill.exec_id + 1, "M1", "IBM", Side.BUY, ExecType.NEW, OrdStatus.NEW,
                              10_000_000_000, None, 0, 3, 0, None, NS0, None, "", "")
    assert drain(s) == [("A", r) for r in ([ack] if mode == "auto-fill" else []) + [fill, resting]]
    assert s.live.keys() == {("A", "M1")} and s.is_known("A", "F1")  # filled: ended, still a duplicate
    s.offer("A", nos("F1", Side.SELL, 7, 100, sym="AF"))
    [(_, dup)] = drain(s)
    assert (dup.exec_type, dup.reject_reason) == (ExecType.REJECTED, RejectReason.DUPLICATE_ORDER)


# -- bridge end to end: a FIX client trades against the simulated venue through the gateway -------------

class Rec:
    def __init__(self):
        self.ev = []

    def __call__(self, sid, e):
        self.ev.append(e)

    def apps(self, mt):
        return [e.message for e in self.ev if isinstance(e, ApplicationMessage) and e.message.msg_type == mt]


@pytest.mark.parametrize("begin", list(VERSIONS))
def test_gateway_bridge_with_exchange_sim(loop, begin):
    t, a = VERSIONS[begin]
    acc = FixAcceptor(AcceptorConfig(port=0))
    acc.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", begin_string=begin,
                                  transport_dictionary=t, app_dictionary=a or ""))
    venue = sim(modes={"AF": "auto-fill"})
    rejects = []
    bridge = FixBridge(acc, venue, venue, clock=lambda: T0 + 0, on_reject=rejects.append)
    acc.on_event = bridge.on_event
    loop.add(CompositeAgent([acc, bridge]))
    acc.on_start()
    crec = Rec()
    ini = FixInitiator(on_event=crec)
    ini.add_session(SessionConfig(sender_comp_id="CLI", target_comp_id="GW", role="initiator", begin_string=begin,
                                  transport_dictionary=t, app_dictionary=a or "", check_latency=False), port=acc.port)
    loop.add(ini)
    sid = f"{begin}:CLI->GW"
    loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in crec.ev), what="logon")
    now = utc_timestamp(T0)
    base = [(21, "1"), (55, "AF"), (54, "1"), (60, now), (38, "100"), (40, "2"), (44, "10.5")]
    ini.submit(sid, "D", [(11, "O1")] + base)
    loop.run_until(lambda: len(crec.apps("8")) == 2, what="ack and fill")
    ack, fill = crec.apps("8")
    fill_type = "2" if begin == "FIX.4.2" else "F"
    assert (ack[150], fill[150], fill[39], fill[14], fill[151], fill[6]) == ("0", fill_type, "2", "100", "0", "10.5")
    # untranslatable: fractional quantity -> BusinessMessageReject, reported
    ini.submit(sid, "D", [(11, "O2")] + [(38, "1.5") if k == 38 else (k, v) for k, v in base])
    loop.run_until(lambda: crec.apps("j"), what="business reject")
    [bmr] = crec.apps("j")
    assert (bmr[372], bmr[380], bmr[379]) == ("D", "0", "O2") and bmr[45] == "3"
    assert rejects == [BridgeReject(f"{begin}:GW->CLI", "D", 3, "business", 0, 38, bmr[58])]
    # cancel of an unknown order -> OrderCancelReject
    ini.submit(sid, "F", [(11, "C1"), (41, "NOPE"), (55, "AF"), (54, "1"), (60, now)] +
               ([(38, "100")] if begin == "FIX.4.2" else []))
    loop.run_until(lambda: crec.apps("9"), what="cancel reject")
    [cxl] = crec.apps("9")
    assert (cxl[11], cxl[41], cxl[434], cxl[102]) == ("C1", "NOPE", "1", "1")
    assert not [e for e in crec.ev if isinstance(e, RejectReceived)]


class FakeSession:
    """Just enough of a Session for the bridge: records what it would send."""

    def __init__(self, sid, sent):
        self.sid, self.sent, self.validator = sid, sent, None
        self.config = SessionConfig(sender_comp_id="GW", target_comp_id="CLI", transport_dictionary="FIX44")

    def send(self, mt, fields, now, body=b""):
        # an encoded body (the bridge's native ExecutionReport) recorded as its fields, values as text
        encoded = [f.partition("=") for f in body.decode("latin-1").split("\x01")[:-1]]
        self.sent.append((self.sid, mt, list(fields) + [(int(t), v) for t, _, v in encoded]))

    def send_reject(self, fields, now):
        self.send("3", fields, now)


class FakeEntry:
    def __init__(self, session):
        self.session = session


class FakeEndpoint:
    """Just enough of an endpoint for the bridge (sessions "S" and "T"): records what it would send."""

    def __init__(self):
        self.sent = []
        self.entries = {sid: FakeEntry(FakeSession(sid, self.sent)) for sid in ("S", "T")}

    def session(self, sid):
        return self.entries[sid].session


class FullSink:
    def offer(self, sid, req):
        return False

    def poll(self, handler, limit):
        return 0


def test_back_pressure_is_refused_with_business_reject_never_dropped():
    ep, rejects = FakeEndpoint(), []
    b = FixBridge(ep, FullSink(), FullSink(), clock=lambda: T0, on_reject=rejects.append)
    b.on_event("S", ApplicationMessage(fix("D", NOS), False))
    assert ep.sent == [("S", "j", [(45, 7), (372, "D"), (379, "O1"), (380, 4), (58, "order entry back pressured, retry")])]
    assert rejects[0].reason == 4 and rejects[0].kind == "business"


def test_reports_for_unknown_orders_are_kept_not_dropped():
    ep = FakeEndpoint()
    venue = sim()
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    venue._out.append((None, REPORTS["ack"]))
    assert b.do_work() == 1 and ep.sent == [] and list(b.unroutable) == [REPORTS["ack"]]


# -- bounded tables: a long-running gateway forgets orders once they have ended -------------------

def nos_fix(cl, sym="IBM", qty="10", px="10.5"):
    return ApplicationMessage(fix("D", [(11, cl), (21, "1"), (55, sym), (54, "1"), (60, utc_timestamp(T0)),
                                        (38, qty), (40, "2"), (44, px)]), False)


def cxl_fix(cl, orig, sym="IBM"):
    return ApplicationMessage(fix("F", [(11, cl), (41, orig), (55, sym), (54, "1"), (60, utc_timestamp(T0))]), False)


def rpl_fix(cl, orig, px, sym="IBM", qty="10"):
    return ApplicationMessage(fix("G", [(11, cl), (41, orig), (21, "1"), (55, sym), (54, "1"), (60, utc_timestamp(T0)),
                                        (38, qty), (40, "2"), (44, px)]), False)


@pytest.mark.parametrize("mode", ["fill-only", "auto-fill", "match"])
def test_tables_stay_bounded_over_many_orders(mode):
    ep = FakeEndpoint()
    venue = sim(default_mode=mode, duplicate_window=500)
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    for i in range(5000):
        b.on_event("S", nos_fix(f"B{i}"))
        if mode == "match":  # a resting buy, then a sell that fills it: both end
            b.on_event("S", ApplicationMessage(fix("D", [(11, f"S{i}"), (21, "1"), (55, "IBM"), (54, "2"),
                                                         (60, utc_timestamp(T0)), (38, "10"), (40, "2"), (44, "10.5")]), False))
    filled = [f for _, mt, f in ep.sent if mt == "8" and dict(f)[39] == "2"]
    assert len(filled) == (10000 if mode == "match" else 5000)  # every order was answered
    assert b.routes == {} and b.orig == {} and not b.unroutable
    assert venue.live == {} and venue.tracked_cl_ord_ids == 500  # the window, not 5000 or 10000


def test_cancel_and_replace_chains_leave_no_entries_and_late_cancel_is_answered():
    ep = FakeEndpoint()
    venue = sim(default_mode="rest")
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    b.on_event("S", nos_fix("O1"))
    assert b.routes == {"O1": "S"}  # resting: still open
    b.on_event("S", rpl_fix("O2", "O1", "11"))  # O1 goes on as O2
    assert b.routes == {"O2": "S"} and b.orig == {"O2": "O1"}
    b.on_event("S", cxl_fix("C1", "NOPE"))  # cancel of an unknown order: rejected, the entry goes
    assert ep.sent[-1][1] == "9" and b.routes == {"O2": "S"}
    b.on_event("S", cxl_fix("C2", "O2"))
    assert dict(ep.sent[-1][2])[39] == "4" and dict(ep.sent[-1][2])[41] == "O2"
    assert b.routes == {} and b.orig == {} and venue.live == {}
    b.on_event("S", cxl_fix("C3", "O2"))  # late cancel of the canceled order: OrderCancelReject unknown order
    mt, f = ep.sent[-1][1], dict(ep.sent[-1][2])
    assert (mt, f[11], f[41], f[102]) == ("9", "C3", "O2", "1")
    assert b.routes == {} and b.orig == {}


def test_duplicate_clordid_detected_within_window_and_forgotten_after():
    ep = FakeEndpoint()
    venue = sim(default_mode="fill-only", duplicate_window=3)
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    for cl in ("A", "B", "C"):
        b.on_event("S", nos_fix(cl))
    b.on_event("S", nos_fix("A"))  # A ended 3 orders ago: inside the window
    f = dict(ep.sent[-1][2])
    assert (f[150], f[39], f[103], f[11]) == ("8", "8", "6", "A")
    b.on_event("S", nos_fix("D"))  # pushes A out of the window
    b.on_event("S", nos_fix("A"))
    assert dict(ep.sent[-1][2])[39] == "2"  # accepted (and filled) again
    assert venue.tracked_cl_ord_ids == 3 and b.routes == {}
    # a duplicate of a live order is refused by the bridge itself and the live order keeps its route
    rest = sim(default_mode="rest")
    b2 = FixBridge(ep, rest, rest, clock=lambda: T0)
    b2.on_event("T", nos_fix("L1"))
    b2.on_event("T", nos_fix("L1"))
    assert ep.sent[-1][1] == "j" and dict(ep.sent[-1][2])[379] == "L1" and b2.routes == {"L1": "T"}
    with pytest.raises(ValueError, match="fault=config key=duplicate_window value=-1"):
        sim(duplicate_window=-1)


def test_a_clordid_open_in_one_session_is_refused_in_another_and_its_reports_stay_with_the_first():
    # Reports carry no session (the Aeron path): a second request under an open ClOrdID must not
    # take the first one's route.  It is refused with BusinessMessageReject before the venue sees it.
    ep, rejects = FakeEndpoint(), []
    venue = sim(default_mode="match")
    b = FixBridge(ep, venue, venue, clock=lambda: T0, on_reject=rejects.append)
    b.on_event("S", nos_fix("X", qty="10", px="10.5"))  # rests on the book
    b.on_event("T", nos_fix("X", qty="5", px="11"))  # T reuses S's open ClOrdID
    sid, mt, f = ep.sent[-1]
    f = dict(f)
    assert (sid, mt, f[372], f[379], f[380]) == ("T", "j", "D", "X", 0) and "ClOrdID X is open" in f[58]
    assert rejects[-1].kind == "business" and b.routes == {"X": "S"}
    b.on_event("T", cxl_fix("X", "X"))  # nor may a cancel reuse it
    assert ep.sent[-1][:2] == ("T", "j") and b.routes == {"X": "S"} and b.orig == {}
    # a sell from T fills S's order: the fill goes to S, whose order it is
    b.on_event("T", ApplicationMessage(fix("D", [(11, "Y"), (21, "1"), (55, "IBM"), (54, "2"), (60, utc_timestamp(T0)),
                                                 (38, "10"), (40, "2"), (44, "10.5")]), False))
    fills = [(sid, dict(f)[11]) for sid, mt, f in ep.sent if mt == "8" and dict(f)[39] == "2"]
    assert ("S", "X") in fills and ("T", "Y") in fills and ("T", "X") not in fills
    assert b.routes == {} and b.orig == {}


class UnconnectedSink(FullSink):
    last_failure = "NOT_CONNECTED"  # as AeronOrderSink says when no venue subscribes


def test_an_order_refused_for_want_of_a_venue_says_so_not_back_pressure():
    ep, rejects = FakeEndpoint(), []
    b = FixBridge(ep, UnconnectedSink(), FullSink(), clock=lambda: T0, on_reject=rejects.append)
    b.on_event("S", ApplicationMessage(fix("D", NOS), False))
    assert ep.sent[0][2][-1] == (58, "order entry not connected: no venue subscribed (NOT_CONNECTED)")
    assert rejects[0].reason == 4


class DedupingVenue:
    """A venue behind a stream that decides duplicates itself (as the sequencer does, across a
    gateway restart): a ClOrdID it has seen is answered with a DuplicateOrder reject."""

    def __init__(self, seen):
        self.seen, self.out = set(seen), []

    def offer(self, sid, req):
        if req.cl_ord_id in self.seen:
            self.out.append((sid, ExecutionReport(0, 0, req.cl_ord_id, req.symbol, req.side, ExecType.REJECTED, OrdStatus.REJECTED,
                                                  req.price, None, 0, 0, 0, None, NS0, RejectReason.DUPLICATE_ORDER,
                                                  "reason=duplicate_clordid")))
        else:
            self.seen.add(req.cl_ord_id)
            self.out.append((sid, ExecutionReport(7, 1, req.cl_ord_id, req.symbol, req.side, ExecType.NEW, OrdStatus.NEW,
                                                  req.price, None, 0, req.quantity, 0, None, NS0)))
        return True

    def poll(self, handler, limit):
        n = 0
        while self.out and n < limit:
            handler(*self.out.pop(0))
            n += 1
        return n


@pytest.mark.parametrize("flag", [(43, "Y"), (97, "Y")])
def test_a_re_sent_order_the_venue_already_has_is_not_rejected_to_the_client(flag):
    """After a gateway restart the client re-sends (PossDupFlag or PossResend) an order it heard
    nothing of; the venue had it from the gateway before the kill and refuses the copy as a
    duplicate.  That refusal is not the order's fate (its own reports are), so the client must not
    see the order rejected; a plain reuse of a ClOrdID still is."""
    ep = FakeEndpoint()
    venue = DedupingVenue({"O1"})
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    poss_dup = flag[0] == 43
    body = NOS + [flag] + ([(122, TS0)] if poss_dup else [])
    b.on_event("S", ApplicationMessage(fix("D", body), poss_dup))
    assert ep.sent == [] and b.resent_duplicates_ignored == 1 and "O1" not in b.routes
    # a re-sent order the venue did not have is executed and answered as any other
    b.on_event("S", ApplicationMessage(fix("D", [(11, "O2") if k == 11 else (k, v) for k, v in body]), poss_dup))
    assert [(s, mt, dict(f)[150], dict(f)[11]) for s, mt, f in ep.sent] == [("S", "8", "0", "O2")]
    # the same ClOrdID without a re-send flag: the duplicate reject reaches the client
    ep.sent.clear()
    b.on_event("S", ApplicationMessage(fix("D", NOS), False))
    assert [(mt, dict(f)[150], dict(f)[11], dict(f)[103]) for _, mt, f in ep.sent] == [("8", "8", "O1", "6")]


@pytest.mark.parametrize("flag", [(43, "Y"), (97, "Y")])
def test_a_re_sent_order_still_open_through_the_session_is_neither_sent_again_nor_refused(flag):
    """The client re-sends an order it has no ack for yet (after a reconnect: FIX resend of the
    same message, then its own PossResend): the order is open through this session, so the copy
    goes nowhere and the client gets no BusinessMessageReject for it.  Another session's use of
    the ClOrdID, or one without a re-send flag, is refused as before."""
    ep = FakeEndpoint()
    venue = DedupingVenue(set())
    venue.poll = lambda handler, limit: 0  # the venue's answers are slow: nothing comes back yet
    b = FixBridge(ep, venue, venue, clock=lambda: T0)
    b.on_event("S", ApplicationMessage(fix("D", NOS), False))
    poss_dup = flag[0] == 43
    body = NOS + [flag] + ([(122, TS0)] if poss_dup else [])
    b.on_event("S", ApplicationMessage(fix("D", body), poss_dup))
    assert ep.sent == [] and len(venue.out) == 1 and b.possdup_ignored == 1
    b.on_event("T", ApplicationMessage(fix("D", body), poss_dup))  # not this session's order
    b.on_event("S", ApplicationMessage(fix("D", NOS), False))  # no re-send flag
    assert [(s, mt, dict(f)[380]) for s, mt, f in ep.sent] == [("T", "j", 0), ("S", "j", 0)] and len(venue.out) == 1
