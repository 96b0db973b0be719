"""The strategy SDK: publisher -> strategy -> venue -> fills -> position and PnL over the embedded
driver's IPC; bookkeeping rules; hostile reports; back pressure; timers; config errors name the key."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest

from tickline.strategy.testing import run_until
from tickline.feed import MarketDataPublisher, price, sbe
from tickline.strategy import ManualClock, OrderStatus, Position, SimulatedVenue, Strategy, StrategyConfigError, \
    StrategyRunner, load_config
from tickline.strategy.config import load_toml
from tickline.strategy.examples.market_maker import MarketMaker
from tickline.strategy.examples.tick_to_trade import STAGES, TickToTradeProbe

STREAM = 1101


def config(**over: Any) -> Any:
    table = {"name": "t1", "account": "ACC1", "symbols": ["ESZ6"], "md_stream": STREAM, "cl_ord_id_seed": 0}
    table.update(over)
    return load_config(table, source="test.toml", env={})


def start(aeron: Any, strategy: Strategy, venue: Any, clock: ManualClock) -> tuple[StrategyRunner, MarketDataPublisher]:
    runner = StrategyRunner(strategy, venue, aeron=aeron, clock=clock)
    runner.on_start()
    pub = aeron.add_exclusive_publication("aeron:ipc", STREAM)
    run_until(runner.do_work, lambda: pub.is_connected)
    return runner, MarketDataPublisher(pub, clock_ns=clock.time_ns)


def quotes(s: Strategy) -> list[tuple[str, int | None, int]]:
    return sorted(("buy" if o.is_buy else "sell", o.price, o.quantity) for o in s.open_orders())


def test_market_maker_quotes_fills_skews_and_keeps_position_and_pnl(aeron: Any) -> None:
    clock = ManualClock()
    venue = SimulatedVenue(clock.time_ns)
    mm = MarketMaker(config(params={"spread": 0.02, "size": 2, "max_position": 4, "skew": 0.005, "requote": 0.005}))
    runner, md = start(aeron, mm, venue, clock)
    acked = lambda: len(mm.open_orders()) == 2 and all(o.order_id for o in mm.open_orders())  # noqa: E731

    venue.set_market("ESZ6", price("100.00"), price("100.02"))
    assert md.top_of_book("ESZ6", price("100.00"), 5, price("100.02"), 5, ts=1)
    run_until(runner.do_work, acked)
    assert quotes(mm) == [("buy", price("100.00"), 2), ("sell", price("100.02"), 2)]  # mid 100.01 +- 0.01

    venue.set_market("ESZ6", price("99.97"), price("99.99"))  # the market drops through the bid: bought 2 at 99.99
    run_until(runner.do_work, lambda: mm.position("ESZ6").quantity == 2)
    pos = mm.position("ESZ6")
    assert (pos.cost, pos.realized, mm.fills) == (2 * price("99.99"), 0, 1)

    assert md.top_of_book("ESZ6", price("99.97"), 5, price("99.99"), 5, ts=2)
    # mid 99.98, long 2: fair = 99.98 - 0.005 * 2 = 99.97; a new bid at 99.96, the ask replaced down to 99.98
    run_until(runner.do_work, lambda: acked() and quotes(mm) == [("buy", price("99.96"), 2), ("sell", price("99.98"), 2)])
    assert pos.unrealized(mm.mid("ESZ6")) == 2 * (price("99.98") - price("99.99"))

    venue.set_market("ESZ6", price("99.98"), price("100.00"))  # the bid rises through the ask: sold 2 at 99.98
    run_until(runner.do_work, lambda: pos.quantity == 0)
    assert (pos.realized, pos.cost, pos.bought, pos.sold) == (2 * (price("99.98") - price("99.99")), 0, 2, 2)
    assert pos.realized_pnl == pytest.approx(-0.02)

    c = runner.counters()
    assert c["md"]["gaps"] == 0 and c["md"]["malformed"] == 0 and c["orders"]["malformed"] == 0
    assert c["orders"]["fills"] == 2 and c["callback_errors"] == 0 and c["md"]["listener_errors"] == 0
    names = [name for name, _ in venue.received]
    assert names == ["NewOrder", "NewOrder", "NewOrder", "ReplaceOrder"]
    runner.on_close()  # cancel_on_stop: the bid still resting is cancelled
    assert [name for name, _ in venue.received[4:]] == ["CancelOrder"] and not venue.resting


def test_tick_to_trade_probe_records_every_stage(aeron: Any) -> None:
    clock = ManualClock()
    venue = SimulatedVenue(clock.time_ns, follow_market_data=True)
    probe = TickToTradeProbe(config(params={"every": 2}))
    runner, md = start(aeron, probe, venue, clock)
    for i in range(6):
        assert md.top_of_book("ESZ6", price(100), 5, price(101), 5, ts=i)
        clock.advance(1000)
    run_until(runner.do_work, lambda: probe.orders_sent == 3 and not probe.open_orders() and not venue.out)
    stages = probe.stages()
    assert {name: stages[name]["count"] for name in STAGES} == {
        "md_to_callback": 3, "callback_to_send": 3, "tick_to_trade": 3, "send_to_ack": 3, "fill_to_callback": 3,
        "send_to_fill": 3}
    assert probe.position("ESZ6").quantity == 1  # buy, sell, buy: it alternates to stay near flat
    assert [name for name, _ in venue.received] == ["NewOrder"] * 3


def test_position_rules() -> None:
    p = Position("X")
    p.apply_fill(True, 2, 100)
    p.apply_fill(True, 2, 110)  # long 4 at avg 105
    assert (p.quantity, p.cost, p.avg_price) == (4, 420, 105)
    p.apply_fill(False, 1, 120)  # close 1: +15
    assert (p.quantity, p.cost, p.realized) == (3, 315, 15)
    p.apply_fill(False, 5, 100)  # close 3 at 100 (-15), then short 2 at 100
    assert (p.quantity, p.cost, p.realized) == (-2, 200, 0)
    assert p.unrealized(90) == 20 and p.unrealized(None) == 0
    p.apply_fill(True, 2, 95)  # cover: +10
    assert (p.quantity, p.cost, p.realized, p.avg_price) == (0, 0, 10, None)


class Recorder(Strategy):
    def on_start(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_ack(self, order: Any, report: Any) -> None:
        self.events.append(("ack", order.cl_ord_id))

    def on_fill(self, order: Any, report: Any) -> None:
        self.events.append(("fill", report.last_quantity))

    def on_cancel(self, order: Any, report: Any) -> None:
        self.events.append(("cancel", order.status))

    def on_reject(self, order: Any, report: Any) -> None:
        self.events.append(("reject", report.NAME))

    def on_timer(self, name: str, now_ns: int) -> None:
        self.events.append(("timer", name))


class ListGateway:
    """Hands the runner exactly the report bytes a test puts in."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []
        self.sent: list[bytes] = []
        self.accept = True

    def send(self, message: bytes | memoryview) -> bool:
        if self.accept:
            self.sent.append(bytes(message))
        return self.accept

    def poll(self, handler: Any, limit: int) -> int:
        n = 0
        while self.inbox and n < limit:
            handler(memoryview(self.inbox.pop(0)))
            n += 1
        return n


class NoMarketData:
    def poll(self, handler: Any, limit: int) -> int:
        return 0


def offline(strategy: Strategy, gateway: Any, clock: ManualClock | None = None) -> StrategyRunner:
    runner = StrategyRunner(strategy, gateway, subscription=NoMarketData(), clock=clock or ManualClock())
    runner.on_start()
    return runner


def test_duplicate_and_replayed_fills_are_applied_once() -> None:
    venue = SimulatedVenue(fill_quantity=1)
    venue.set_market("ESZ6", price(99), price(100))
    s = Recorder(config())
    gw = ListGateway()
    runner = offline(s, gw)
    order = s.buy("ESZ6", 2, price(100))
    venue.send(gw.sent[0])  # ack + fill 1
    venue.set_market("ESZ6", price(99), price(100))  # fill the second
    reports = list(venue.out)
    assert len(reports) == 3
    gw.inbox = [reports[0], reports[1], reports[1], reports[2], reports[1], reports[2]]
    while runner.do_work():
        pass
    assert s.events == [("ack", order.cl_ord_id), ("fill", 1), ("fill", 1)]
    assert order.status is OrderStatus.FILLED and s.position("ESZ6").quantity == 2
    assert runner.books.counters["duplicate_fills"] == 3


def test_hostile_and_unknown_reports_are_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    m = sbe.orders()
    s = Recorder(config())
    gw = ListGateway()
    runner = offline(s, gw)
    venue = SimulatedVenue()
    s.buy("ESZ6", 1, price(1))
    venue.send(gw.sent[0])
    ack = bytearray(venue.out.popleft())
    bad_enum = bytearray(ack)
    bad_enum[8 + 53] = 0x7A  # execType (after orderId, execId, clOrdId, symbol, side): 'z' is no ExecType
    long_text = ack[:8 + m.ExecutionReportDecoder.BLOCK_LENGTH] + struct.pack("<I", 1 << 30)
    bad_utf8 = ack[:8 + m.ExecutionReportDecoder.BLOCK_LENGTH] + struct.pack("<I", 2) + b"\xff\xfe"
    other = bytearray(ack)
    other[8 + 16:8 + 36] = b"nobody-0".ljust(20, b"\0")  # a ClOrdId this strategy never sent
    gw.inbox = [b"\x00" * 5, bytes(struct.pack("<HHHH", 10, 4, 100, 0)) + bytes(100),
                bytes(struct.pack("<HHHH", 10, 1, 101, 0)) + bytes(100), bytes(ack[:60]), bytes(long_text),
                bytes(bad_utf8), bytes(bad_enum), bytes(other), bytes(ack)]
    with caplog.at_level("WARNING", logger="tickline.strategy"):
        while runner.do_work():
            pass
    c = runner.books.counters
    assert (c["malformed"], c["unknown"]) == (7, 1)
    assert s.events == [("ack", s.open_orders()[0].cl_ord_id)]
    assert "malformed order report: fault=peer" in caplog.text and "cl_ord_id=nobody-0" in caplog.text
    assert "bad enum value: exec_type=122" in caplog.text and "truncated text" in caplog.text


def test_a_fill_beyond_the_orders_quantity_is_refused() -> None:
    venue = SimulatedVenue()
    venue.set_market("ESZ6", price(99), price(100))
    s = Recorder(config())
    gw = ListGateway()
    runner = offline(s, gw)
    order = s.buy("ESZ6", 2, price(100))
    venue.send(gw.sent[0])
    ack, fill = venue.out
    over = bytearray(fill)
    struct.pack_into("<Q", over, 8 + 88, 3)  # cumQuantity 3 of an order for 2
    gw.inbox = [ack, bytes(over), fill]
    while runner.do_work():
        pass
    assert runner.books.counters["malformed"] == 1 and order.filled == 2 and s.position("ESZ6").quantity == 2


def test_back_pressure_queues_then_denies_and_nothing_blocks() -> None:
    s = Recorder(config(max_pending_sends=1))
    gw = ListGateway()
    runner = offline(s, gw)
    gw.accept = False
    first = s.buy("ESZ6", 1, price(1))
    second = s.buy("ESZ6", 1, price(2))
    assert first.status is OrderStatus.SUBMITTED and runner.pending_sends == 1
    assert second.status is OrderStatus.DENIED and "send queue full" in second.reason
    assert runner.do_work() == 0 and runner.send_retries == 1
    gw.accept = True
    assert runner.do_work() == 1 and runner.pending_sends == 0
    decoded = sbe.orders().decode(gw.sent[0])
    assert (decoded.cl_ord_id, decoded.price.mantissa, decoded.account) == (first.cl_ord_id, price(1), "ACC1")
    assert [o.cl_ord_id for o in s.open_orders()] == [first.cl_ord_id]


def test_cancel_replace_and_refused_requests() -> None:
    venue = SimulatedVenue()
    s = Recorder(config())
    runner = offline(s, venue)
    order = s.buy("ESZ6", 5, price(10))
    while runner.do_work():
        pass
    assert s.replace(order, price=price(11), quantity=6)
    assert not s.replace(order, price=price(12))  # one request in flight at a time
    while runner.do_work():
        pass
    assert (order.price, order.quantity, order.cl_ord_id, order.pending_replace) == (price(11), 6, "t1-1", None)
    venue.resting.clear()  # the venue forgets it: the cancel is refused with an OrderReject
    assert s.cancel(order)
    while runner.do_work():
        pass
    assert s.events[-1] == ("reject", "OrderReject") and order.is_open and not order.pending_cancel
    with pytest.raises(ValueError, match="symbol not in the strategy's config: symbol='NQZ6'"):
        s.buy("NQZ6", 1, price(1))
    with pytest.raises(ValueError, match="price must be an int mantissa"):
        s.buy("ESZ6", 1, 10.5)  # type: ignore[arg-type]
    for bad_px in (True, "10"):
        with pytest.raises(ValueError, match="price must be an int mantissa"):
            s.sell("ESZ6", 1, bad_px)  # type: ignore[arg-type]
    for bad_qty in (True, 0, -1, 1.0, "1"):
        with pytest.raises(ValueError, match="quantity must be a whole number > 0"):
            s.buy("ESZ6", bad_qty, price(10))  # type: ignore[arg-type]


def test_timers_fire_by_the_runners_clock() -> None:
    clock = ManualClock()
    s = Recorder(config())
    runner = offline(s, ListGateway(), clock)
    s.set_timer("tick", 1_000_000)
    s.set_timer("once", 2_500_000, repeat=False)
    runner.do_work()
    assert s.events == []
    for _ in range(3):
        clock.advance(1_000_000)
        runner.do_work()
    assert s.events == [("timer", "tick"), ("timer", "tick"), ("timer", "once"), ("timer", "tick")]
    s.cancel_timer("tick")
    clock.advance(5_000_000)
    runner.do_work()
    assert len(s.events) == 4


@pytest.mark.parametrize("over,message", [
    ({"account": None}, "key=strategy.account reason=missing (required)"),
    ({"acount": "x"}, "key=strategy.acount reason=unknown key"),
    ({"symbols": []}, "key=strategy.symbols reason=must be a non-empty list"),
    ({"symbols": ["X" * 17]}, "key=strategy.symbols reason=each symbol must be 1-16 ASCII characters"),
    ({"md_stream": "1001"}, "key=strategy.md_stream reason=must be an integer: value='1001'"),
    ({"md_channel": "aeron:tcp"}, "key=strategy.md_channel reason=not an Aeron channel"),
    ({"name": "has space"}, "key=strategy.name reason=must be 1-32 characters"),
    ({"idle": "nap"}, "key=strategy.idle reason=unknown idle strategy"),
    ({"gateway": {"kind": "carrier pigeon"}}, "key=strategy.gateway.kind reason=must be sequencer | simulated"),
    ({"cl_ord_id_prefix": "much_too_long"}, "key=strategy.cl_ord_id_prefix reason=must be 1-8 characters"),
])
def test_config_errors_name_file_and_key(over: dict[str, Any], message: str) -> None:
    table = {"name": "t1", "account": "ACC1", "symbols": ["ESZ6"], "md_stream": STREAM}
    table.update(over)
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(StrategyConfigError) as e:
        load_config(table, source="deploy.toml", env={})
    assert f"file=deploy.toml {message}" in str(e.value) and str(e.value).endswith("fault=user")


@pytest.mark.parametrize("params,message", [
    ({"spred": 1}, "key=strategy.params.spred reason=unknown parameter of MarketMaker"),
    ({"size": "2"}, "key=strategy.params.size reason=must be int: value='2'"),
    ({"spread": -1}, "key=strategy.params reason=spread must be > 0: spread=-1.0"),
])
def test_strategy_params_are_validated_against_the_class(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MarketMaker(config(params=params))


def test_environment_overrides_and_their_errors() -> None:
    table = {"name": "t1", "account": "ACC1", "symbols": ["ESZ6"], "md_stream": STREAM}
    cfg = load_config(table, env={"TICKLINE_STRATEGY_MD_STREAM": "7", "TICKLINE_STRATEGY_SYMBOLS": "A,B"})
    assert (cfg.md_stream, cfg.symbols) == (7, ("A", "B"))
    with pytest.raises(StrategyConfigError, match="key=TICKLINE_STRATEGY_FRAGMENT_LIMIT reason=not an integer"):
        load_config(table, env={"TICKLINE_STRATEGY_FRAGMENT_LIMIT": "lots"})


def test_toml_file_section_and_errors(tmp_path: Any) -> None:
    path = tmp_path / "deploy.toml"
    path.write_text('[strategies.mm1]\nname = "mm1"\naccount = "A"\nsymbols = ["ESZ6"]\nmd_stream = 5\n'
                    '[strategies.mm1.params]\nsize = 3\n')
    cfg = load_toml(str(path), "strategies.mm1", env={})
    assert (cfg.name, cfg.prefix, MarketMaker(cfg).params.size) == ("mm1", "mm1", 3)
    with pytest.raises(StrategyConfigError, match=f"file={path} key=strategies.mm2 reason=missing section"):
        load_toml(str(path), "strategies.mm2", env={})
    path.write_text("[strategy\n")
    with pytest.raises(StrategyConfigError, match="reason=not valid TOML"):
        load_toml(str(path), env={})


def test_cl_ord_ids_fit_the_schema_and_a_restart_continues_above() -> None:
    from tickline.strategy.orders import ClOrdIdGenerator

    first = ClOrdIdGenerator("mm1", seed=1_765_000_000_000_000)  # microseconds since the epoch
    ids = [first() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) <= 20 and i.startswith("mm1-") for i in ids)
    later = ClOrdIdGenerator("mm1", seed=1_765_000_000_000_000 + 5_000_000)  # restarted 5 s later
    assert int(later()[4:], 36) > max(int(i[4:], 36) for i in ids)
    with pytest.raises(ValueError, match="prefix must be 1-8 characters"):
        ClOrdIdGenerator("much-too-long", 0)


def test_a_restarted_strategy_takes_over_its_open_orders_and_position() -> None:
    venue = SimulatedVenue(fill_quantity=1)
    venue.set_market("ESZ6", price(99), price(101))
    first = Recorder(config(cl_ord_id_seed=100))
    runner = offline(first, venue)
    resting = first.buy("ESZ6", 3, price(100))
    crossing = first.buy("ESZ6", 2, price(101))  # fills 1 at a time
    first.sell("ESZ6", 1, price(102))
    while runner.do_work():
        pass
    venue.set_market("ESZ6", price(99), price(100))  # the resting buy fills 1 of 3 at 100; the crossing one its last at 100
    while runner.do_work():
        pass
    assert (resting.filled, crossing.status, first.position("ESZ6").quantity) == (1, OrderStatus.FILLED, 3)

    # the process dies; a new one with the same config (and a seed that would repeat ids) starts
    second = Recorder(config(cl_ord_id_seed=0))
    runner2 = StrategyRunner(second, venue, subscription=NoMarketData(), clock=ManualClock())
    reports, positions = venue.recover("ACC1")
    reports.append(venue._encode(venue.resting[resting.cl_ord_id], "New", "New"))  # reported twice: taken once
    assert runner2.restore(reports, positions) == 2
    runner2.on_start()
    got = sorted((o.cl_ord_id, o.price, o.quantity, o.filled, o.leaves, o.status) for o in second.open_orders())
    want = sorted((o.cl_ord_id, o.price, o.quantity, o.filled, o.leaves, o.status) for o in first.open_orders())
    assert got == want and len(got) == 2
    p1, p2 = first.position("ESZ6"), second.position("ESZ6")
    assert (p2.quantity, p2.cost, p2.realized) == (p1.quantity, p1.cost, p1.realized) == (3, price(101) + 2 * price(100), 0)
    fresh = second.buy("ESZ6", 1, price(1))
    assert int(fresh.cl_ord_id[3:], 36) > max(int(o.cl_ord_id[3:], 36) for o in first.open_orders())
    taken = next(o for o in second.open_orders() if o.cl_ord_id == resting.cl_ord_id)
    assert second.cancel(taken)
    while runner2.do_work():
        pass
    assert taken.status is OrderStatus.CANCELED and resting.cl_ord_id not in venue.resting


def test_restore_refuses_what_is_not_this_strategys_open_order() -> None:
    venue = SimulatedVenue()
    other = Recorder(config(name="other", cl_ord_id_seed=0))
    offline(other, venue)
    other.buy("ESZ6", 1, price(1))
    s = Recorder(config())
    runner = StrategyRunner(s, venue, subscription=NoMarketData(), clock=ManualClock())
    reports, _ = venue.recover("ACC1")
    assert len(reports) == 1 and runner.restore(reports + [b"\x00" * 12]) == 0
    assert (runner.books.counters["unknown"], runner.books.counters["malformed"]) == (1, 1)


def test_a_new_order_packed_at_once_is_byte_for_byte_the_encoders_and_odd_values_go_through_the_encoder() -> None:
    import random

    from tickline.strategy.orders import ClOrdIdGenerator, OrderBookkeeping

    m = sbe.orders()
    fast = OrderBookkeeping("ACC1", ClOrdIdGenerator("F", 0))
    slow = OrderBookkeeping("ACC1", ClOrdIdGenerator("F", 0))
    slow._pack_new = lambda *args: None  # type: ignore[method-assign]  # every order through the encoder's setters
    rnd = random.Random(3)
    for k in range(400):
        args = (rnd.choice(("ESZ6", "X", "S" * 16)), rnd.choice(list(m.Side)[:2]), rnd.choice((1, 7, 2**64 - 1)),
                rnd.choice((None, 0, -3, 2**63 - 1, rnd.randrange(10**13))), rnd.choice(list(m.OrdType)[:4]),
                rnd.choice(list(m.TimeInForce)[:5]), rnd.randrange(2**64))
        a, b = fast.new(*args), slow.new(*args)
        assert bytes(a[1]) == bytes(b[1]) and a[0].cl_ord_id == b[0].cl_ord_id
        assert type(a[1]) is bytes and fast._pack_new(a[0].cl_ord_id, *args) == a[1]  # the one-pack path wrote it
    # values the packed form does not take go through the encoder and fail (or not) as it does
    for symbol, qty, px in (("S" * 17, 1, 5), ("É", 1, 5), ("X", 2**64, 5), ("X", -1, 5), ("X", 1, 2**63)):
        errors = []
        for books in (fast, slow):
            try:
                books.new(symbol, m.Side.Buy, qty, px, m.OrdType.Limit, m.TimeInForce.Day, 1)
                errors.append(None)
            except Exception as exc:  # noqa: BLE001 - the two must fail alike
                errors.append((type(exc), str(exc)))
        assert errors[0] == errors[1] and errors[0] is not None, (symbol, qty, px)
