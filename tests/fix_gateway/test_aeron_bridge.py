"""The bridge on Aeron: SBE order codec, the order sink / report source over a real
media driver, the exchange simulator as an Aeron agent, and their configuration."""

import pytest

from tickline.fix_gateway.aeron_bridge import AeronExecutionSource, AeronOrderSink, AeronStreams
from tickline.fix_gateway.bridge import (
    CancelOrder, CxlRejResponseTo, ExecType, ExecutionReport, NewOrder, OrdStatus, OrdType, OrderReject, RejectReason,
    ReplaceOrder, Side, TimeInForce,
)
from tickline.fix_gateway.config import ConfigError
from tickline.venue.exchange_service import ExchangeSimAgent, ExchangeSimConfig, load_exchange_config
from tickline.fix_gateway.gateway import load_config
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError, sbe_module

PX = 1_000_000_000

MESSAGES = [
    NewOrder("A1", "acct", "XYZ", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 5 * PX, None, 10, 123, None),
    NewOrder("A2", "", "XYZ", Side.SELL, OrdType.MARKET, TimeInForce.IMMEDIATE_OR_CANCEL, None, None, 1, 1, 99),
    NewOrder("A3", "", "XYZ", Side.SELL, OrdType.STOP_LIMIT, TimeInForce.GOOD_TILL_DATE, -3, 2, 2 ** 64 - 2, 1, 5),
    CancelOrder("C", "A1", "XYZ", Side.BUY, 5),
    ReplaceOrder("R", "A1", "XYZ", Side.BUY, OrdType.LIMIT, TimeInForce.GOOD_TILL_CANCEL, 7, 11, 3),
    ExecutionReport(1, 2, "A1", "XYZ", Side.BUY, ExecType.TRADE, OrdStatus.FILLED, 5, 5, 10, 0, 10, 5, 77, None, "héllo"),
    ExecutionReport(0, 3, "A1", "XYZ", Side.BUY, ExecType.REJECTED, OrdStatus.REJECTED, None, None, 0, 0, 0, None, 77,
                    RejectReason.DUPLICATE_ORDER, ""),
    OrderReject(None, "C", "A1", OrdStatus.REJECTED, CxlRejResponseTo.CANCEL, RejectReason.UNKNOWN_ORDER, 9, "unknown"),
    OrderReject(4, "C", "A1", OrdStatus.NEW, CxlRejResponseTo.REPLACE, RejectReason.BROKER_OPTION, 9, "x" * 5000),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_codec_round_trips_every_message_and_matches_the_otf_decoder(msg):
    from tickline.codecs import load_builtin, otf

    c = OrderCodec()
    view, n = c.encode(msg)
    data = bytes(view[:n])
    assert c.decode(data) == msg
    doc, used = otf.decode(load_builtin("orders.xml"), data)  # the schema's independent reading
    assert used == n and doc["message"] == type(msg).__name__
    assert doc["fields"]["clOrdId"] == msg.cl_ord_id


def test_codec_decode_errors_name_the_fault():
    c = OrderCodec()
    view, n = c.encode(MESSAGES[0])
    good = bytes(view[:n])
    with pytest.raises(SbeDecodeError, match="shorter than the SBE header: fault=remote length=3"):
        c.decode(good[:3])
    with pytest.raises(SbeDecodeError, match="truncated SBE message: fault=remote template_id=1 length=50"):
        c.decode(good[:50])
    with pytest.raises(SbeDecodeError, match="wrong SBE schema: fault=remote schema_id=7 expected=101"):
        c.decode(good[:4] + b"\x07\x00" + good[6:])
    with pytest.raises(SbeDecodeError, match="unknown SBE template: fault=remote schema_id=101 template_id=9"):
        c.decode(good[:2] + b"\x09\x00" + good[4:])
    bad_side = bytearray(good)
    bad_side[8 + 48] = ord("7")
    with pytest.raises(SbeDecodeError, match="bad SBE message: fault=remote template_id=1"):
        c.decode(bytes(bad_side))
    assert sbe_module().SCHEMA_ID == 101


# -- over a media driver, in this process ----------------------------------------------


@pytest.fixture
def driver():
    from tickline.transport import MediaDriver

    d = MediaDriver.embedded(options={"aeron.ipc.term.buffer.length": "64k"})
    yield d
    d.close()


@pytest.fixture
def aeron(driver):
    from tickline.transport import Aeron

    a = Aeron(driver.dir)
    yield a
    a.close()


def test_sink_refuses_after_bounded_retries_when_nobody_listens_and_under_back_pressure(driver, aeron, loop):
    streams = AeronStreams(dir=driver.dir, offer_max_attempts=50, offer_timeout_us=200)
    sink = AeronOrderSink(aeron, streams)
    assert sink.offer("s", MESSAGES[0]) is False
    assert sink.failed == {"NOT_CONNECTED": 1} and sink.sent == 0
    sub = aeron.add_subscription(streams.order_channel, streams.order_stream_id)  # connected but never polled
    loop.run_until(lambda: sink.is_connected, timeout=10, what="publication connected")
    accepted = 0
    for _ in range(2000):  # 64 KiB term: the window fills after a few hundred 128-byte frames
        if not sink.offer("s", MESSAGES[0]):
            break
        accepted += 1
    assert 0 < accepted < 2000
    assert sink.sent == accepted and sink.failed["BACK_PRESSURED"] == 1
    assert sub.poll(lambda b, h: None, 10_000) == accepted  # every accepted order is on the stream
    sub.close()
    sink.close()


def test_exchange_agent_matches_queues_reports_until_a_gateway_listens_and_counts_bad_input(driver, aeron, loop):
    streams = AeronStreams(dir=driver.dir)
    venue = loop.add(ExchangeSimAgent(aeron, ExchangeSimConfig(streams=streams, modes={"AF": "auto-fill", "RS": "rest"}),
                                      clock_ns=lambda: 42))
    sink = AeronOrderSink(aeron, streams)
    loop.run_until(lambda: sink.is_connected, timeout=10, what="order stream connected")
    assert sink.offer("s", NewOrder("F1", "", "AF", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 2 * PX, None, 3, 1))
    assert sink.offer("s", NewOrder("R1", "", "RS", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, PX, None, 5, 1))
    assert sink.offer("s", CancelOrder("R2", "R1", "RS", Side.SELL, 2))
    # no report subscriber yet: the reports wait, in order
    loop.run_until(lambda: venue.orders == 3 and venue.venue.pending == 4, timeout=10, what="reports queued")
    # garbage on the order stream: not read while reports wait (the venue pushes back), then counted and reported
    raw = aeron.add_publication(streams.order_channel, streams.order_stream_id)
    loop.run_until(lambda: raw.is_connected, timeout=10, what="raw publication connected")
    assert raw.offer(b"\x01\x02\x03") > 0
    loop.run_for(50)
    assert venue.orders == 3 and venue.reports == 0 and venue.bad == 0
    source = AeronExecutionSource(aeron, streams)
    got = []
    loop.add(type("Poller", (), {"role_name": lambda s: "p", "on_start": lambda s: None, "on_close": lambda s: None,
                                 "do_work": lambda s: source.poll(lambda sid, r: got.append((sid, r)), 10)})())
    loop.run_until(lambda: len(got) == 4 and venue.bad == 1, timeout=10, what="4 reports and the bad fragment")
    assert [(r.cl_ord_id, r.exec_type, r.ord_status) for _, r in got] == [
        ("F1", ExecType.NEW, OrdStatus.NEW), ("F1", ExecType.TRADE, OrdStatus.FILLED),
        ("R1", ExecType.NEW, OrdStatus.NEW), ("R2", ExecType.CANCELED, OrdStatus.CANCELED)]
    assert all(sid is None for sid, _ in got)  # the bridge routes by ClOrdID
    assert got[1][1].last_price == 2 * PX and got[1][1].transact_time == 42
    assert "shorter than the SBE header: fault=remote length=3 aeron_session=" in venue.errors[0]
    assert source.received == 4 and source.bad == 0 and venue.orders == 3 and venue.reports == 4


# -- configuration ---------------------------------------------------------------------


def _gw(tmp_path, extra):
    p = tmp_path / "t.toml"
    p.write_text('[fix_gateway]\n' + extra + '\n[fix_gateway.acceptor]\n[[fix_gateway.sessions]]\n'
                 'sender_comp_id="A"\ntarget_comp_id="B"\n')
    return p


def test_gateway_bridge_config(tmp_path):
    assert load_config(_gw(tmp_path, ""), env={}).bridge_kind == "in-process"
    cfg = load_config(_gw(tmp_path, '[fix_gateway.aeron]\ndir = "/dev/shm/x"\norder_stream_id = 7'), env={})
    assert cfg.bridge_kind == "aeron" and cfg.aeron.order_stream_id == 7 and cfg.aeron.report_stream_id == 1002
    cfg = load_config(_gw(tmp_path, 'bridge = "in-process"\n[fix_gateway.aeron]\ndir = "/dev/shm/x"'), env={})
    assert cfg.bridge_kind == "in-process"
    env = {"TICKLINE_FIX_GATEWAY_AERON_REPORT_STREAM_ID": "9"}
    assert load_config(_gw(tmp_path, 'bridge = "aeron"'), env=env).aeron.report_stream_id == 9
    with pytest.raises(ConfigError, match="bad bridge: fault=config key=fix_gateway.bridge value='udp'"):
        load_config(_gw(tmp_path, 'bridge = "udp"'), env={})
    with pytest.raises(ConfigError, match="unknown key: fault=config key=fix_gateway.aeron.stream"):
        load_config(_gw(tmp_path, '[fix_gateway.aeron]\nstream = 1'), env={})
    with pytest.raises(ConfigError, match="orders and reports need different streams: fault=config key=report_stream_id"):
        load_config(_gw(tmp_path, '[fix_gateway.aeron]\nreport_stream_id = 1001'), env={})
    with pytest.raises(ConfigError, match="embedded driver needs a directory .*: fault=config key=dir"):
        load_config(_gw(tmp_path, '[fix_gateway.aeron]\nembedded_driver = true'), env={})
    with pytest.raises(ConfigError, match="bad channel: fault=config key=order_channel value='tcp:x'"):
        load_config(_gw(tmp_path, '[fix_gateway.aeron]\norder_channel = "tcp:x"'), env={})


def test_exchange_sim_config(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('[exchange_sim]\ndir = "/dev/shm/x"\norder_stream_id = 5\nmodes = { AF = "auto-fill" }\n')
    cfg = load_exchange_config(str(p), env={"TICKLINE_EXCHANGE_SIM_IDLE": "sleeping"})
    assert (cfg.streams.order_stream_id, cfg.streams.dir, cfg.modes, cfg.idle) == (5, "/dev/shm/x", {"AF": "auto-fill"},
                                                                                  "sleeping")
    p.write_text('[exchange_sim]\nmodes = { AF = "fill" }\n')
    with pytest.raises(ConfigError, match="bad venue mode: fault=config key=exchange_sim.modes symbol=AF value='fill'"):
        load_exchange_config(str(p), env={})
    p.write_text('[exchange_sim]\nport = 1\n')
    with pytest.raises(ConfigError, match="unknown key: fault=config key=exchange_sim.port"):
        load_exchange_config(str(p), env={})
    p.write_text('[fix_gateway]\n')
    with pytest.raises(ConfigError, match="no \\[exchange_sim\\] section: fault=config path="):
        load_exchange_config(str(p), env={})


@pytest.mark.parametrize("transport", ["ipc", "udp"])
def test_gateway_with_embedded_driver_trades_with_an_exchange_agent(tmp_path, loop, transport, udp_port):
    """The daemon's wiring in this process: [fix_gateway.aeron] embedded_driver = true, the
    exchange agent as another client of that driver, a tickline FIX initiator as the client.
    Orders and reports go over IPC, or over UDP on loopback as between hosts."""
    import time

    from tickline.fix_gateway.gateway import Gateway
    from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
    from tickline.fix_gateway.session import ApplicationMessage, LoggedOn, SessionConfig, utc_timestamp
    from tickline.transport import Aeron, free_ports
    from tickline.transport.driver import unique_dir

    port = free_ports(kind="tcp")[0]
    d = unique_dir("tickline-test-gw")
    channels = ""
    if transport == "udp":
        channels = (f'order_channel = "aeron:udp?endpoint=127.0.0.1:{udp_port}"\n'
                    f'report_channel = "aeron:udp?endpoint=127.0.0.1:{udp_port}"\n')
    p = tmp_path / "t.toml"
    p.write_text(f'[fix_gateway]\nstore_dir = "{tmp_path}/s"\n[fix_gateway.aeron]\ndir = "{d}"\nembedded_driver = true\n'
                 f'{channels}[fix_gateway.acceptor]\nport = {port}\n[[fix_gateway.sessions]]\nsender_comp_id = "GW"\n'
                 f'target_comp_id = "C"\n')
    gw = Gateway(load_config(p, env={}))
    try:
        assert gw.link is not None and gw.link.driver is not None and gw.bridge_status()["connected"] is False
        assert gw.config.aeron.order_channel.startswith(f"aeron:{transport}")
        sim_client = Aeron(d)
        try:
            loop.add(gw)
            loop.add(ExchangeSimAgent(sim_client, ExchangeSimConfig(streams=gw.config.aeron, default_mode="auto-fill")))
            events = []
            ini = loop.add(FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=lambda sid, e: events.append(e)))
            ini.add_session(SessionConfig(sender_comp_id="C", target_comp_id="GW", role="initiator"), port=port)
            loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in events) and gw.bridge_status()["connected"],
                           timeout=20, what="logon and order stream connected")
            ini.submit("FIX.4.4:C->GW", "D", [(11, "E1"), (55, "Q"), (54, "1"), (60, utc_timestamp(time.time())),
                                               (38, "7"), (40, "2"), (44, "2.5")])
            app = lambda: [e.message for e in events if isinstance(e, ApplicationMessage)]
            loop.run_until(lambda: len(app()) == 2, timeout=10, what="ack and fill")
            assert [(m[11], m[150], m[39]) for m in app()] == [("E1", "0", "0"), ("E1", "F", "2")]
            assert gw.bridge_status() == {"kind": "aeron", "connected": True, "orders_sent": 1, "orders_refused": {},
                                          "reports_received": 2, "reports_bad": 0, "reports_refused": 0, "rejects": 0}
            loop.close()  # on_close of every agent: the gateway closes its client and the driver
        finally:
            sim_client.close()
    finally:
        gw.close_link()
    import os
    import shutil
    deadline = time.monotonic() + 5
    while os.path.exists(d) and time.monotonic() < deadline:
        time.sleep(0.01)
    exists = os.path.exists(d)
    shutil.rmtree(d, ignore_errors=True)
    assert not exists  # the embedded driver deletes its directory on shutdown
