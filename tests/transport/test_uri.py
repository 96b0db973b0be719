"""Channel URIs: what the builder produces, what the parser accepts, and the
exact errors for what it refuses."""

import socket

import pytest

from tickline.transport import uri
from tickline.transport.uri import ChannelError, ChannelUri, free_ports, parse_duration_ns, parse_size


def test_builders_produce_driver_strings() -> None:
    assert str(ChannelUri.ipc()) == "aeron:ipc"
    assert str(ChannelUri.ipc(term_length="1m", sparse=True)) == "aeron:ipc?term-length=1m|sparse=true"
    uri = ChannelUri.udp("127.0.0.1:40123", mtu=1408, term_length=65536, reliable=False, ttl=8, session_id=7)
    assert str(uri) == "aeron:udp?endpoint=127.0.0.1:40123|mtu=1408|term-length=65536|reliable=false|ttl=8|session-id=7"
    mdc = ChannelUri.udp(control="127.0.0.1:40124", control_mode="dynamic")
    assert str(mdc) == "aeron:udp?control=127.0.0.1:40124|control-mode=dynamic"
    assert str(ChannelUri.udp(control_mode="manual")) == "aeron:udp?control-mode=manual"
    assert str(ChannelUri.udp("[::1]:40125")) == "aeron:udp?endpoint=[::1]:40125"


def test_parse_round_trips() -> None:
    for text in [
        "aeron:ipc",
        "aeron:ipc?term-length=64k",
        "aeron:udp?endpoint=localhost:40123|interface=127.0.0.1/24|linger=5ms",
        "aeron:udp?control=127.0.0.1:40124|control-mode=dynamic|tags=1,2",
    ]:
        assert str(ChannelUri.parse(text)) == text
    assert ChannelUri.parse("aeron:udp?endpoint=127.0.0.1:1|mtu=1408").get("mtu") == "1408"


def test_set_chains_and_validates() -> None:
    uri = ChannelUri.ipc().set("term-length", "128k").set("session-id", -5)
    assert str(uri) == "aeron:ipc?term-length=128k|session-id=-5"
    with pytest.raises(ChannelError, match="key=session-id value='x' expected=a 32-bit signed integer"):
        uri.set("session-id", "x")


@pytest.mark.parametrize(
    "text, message",
    [
        ("aeron:tcp", "unknown channel media: media='tcp' expected=ipc|udp channel='aeron:tcp'"),
        ("udp:localhost", "channel must start with 'aeron:': channel='udp:localhost'"),
        ("aeron:udp?endpoint=nohost", "key=endpoint value='nohost' expected=host:port"),
        ("aeron:udp?endpoint=1.2.3.4:70000", "key=endpoint value='1.2.3.4:70000'"),
        ("aeron:ipc?mtu=1000", "key=mtu value='1000' expected=a multiple of 32"),
        ("aeron:ipc?term-length=100000", "key=term-length value='100000' expected=a power of two from 64k to 1g"),
        ("aeron:ipc?term-length=2g", "key=term-length value='2g'"),
        ("aeron:udp?endpoint=a:1|ttl=300", "key=ttl value='300' expected=an integer 0..255"),
        ("aeron:udp?endpoint=a:1|reliable=yes", "key=reliable value='yes' expected=true|false"),
        ("aeron:udp?endpoint=a:1|control-mode=auto", "key=control-mode value='auto' expected=manual|dynamic|response"),
        ("aeron:ipc?endpoint=a:1", "channel parameter not valid for this media: key=endpoint media=ipc"),
        ("aeron:ipc?bogus=1", "unknown channel parameter: key='bogus' media=ipc"),
        ("aeron:udp?mtu=1408", "udp channel needs endpoint=, control= or control-mode=manual"),
        ("aeron:udp?control-mode=dynamic", "control-mode=dynamic needs control=host:port"),
        ("aeron:udp?endpoint", "malformed channel parameter: position=0 text='endpoint' expected=key=value"),
        ("aeron:ipc?sparse=true|sparse=false", "duplicate channel parameter: key=sparse"),
        ("aeron:ipc?", "empty parameter list after '?'"),
        ("aeron:ipc?linger=5 min", "key=linger value='5 min'"),
    ],
)
def test_parse_rejects_with_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ChannelError) as e:
        ChannelUri.parse(text)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_unknown_keys_pass_when_not_strict() -> None:
    uri = ChannelUri.parse("aeron:ipc?future-key=1", strict=False)
    assert str(uri) == "aeron:ipc?future-key=1"
    with pytest.raises(ChannelError, match=r"key=future-key value='' expected=a non-empty value without '\|'"):
        ChannelUri("ipc", {"future-key": ""}, strict=False)


def test_sizes_and_durations() -> None:
    assert parse_size("64k") == 65536
    assert parse_size("16M") == 16 * 1024 * 1024
    assert parse_size("1g") == 1 << 30
    assert parse_duration_ns("5ms") == 5_000_000
    assert parse_duration_ns("250") == 250
    with pytest.raises(ValueError, match="not a size: value='12kb'"):
        parse_size("12kb")
    with pytest.raises(ValueError, match="not a duration: value='1h'"):
        parse_duration_ns("1h")


def _hold(kind: str, port: int) -> "socket.socket | None":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range(kind: str) -> None:
    ports = free_ports(6, kind=kind)
    low = uri._ephemeral_low()
    assert len(set(ports)) == 6 and all(uri._LOWEST_PICKED_PORT <= p < low for p in ports)
    held = [_hold(kind, p) for p in ports]
    try:
        assert all(held), "every returned port binds"
    finally:
        for s in held:
            if s:
                s.close()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_free_ports_skip_a_port_that_is_taken(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for base in free_ports(20, kind=kind):  # find three free neighbours, hold the first two
        held = [_hold(kind, base + i) for i in range(3)]
        if held[2] is not None:
            held.pop().close()  # the third is only checked
        if len(held) == 2 and all(held):
            break
        for s in held:
            if s:
                s.close()
    else:
        pytest.fail("no three free neighbouring ports below the ephemeral range")
    monkeypatch.setattr(uri, "_LOWEST_PICKED_PORT", base)
    monkeypatch.setattr(uri, "_ephemeral_low", lambda: base + 3)
    try:
        assert free_ports(kind=kind) == [base + 2]
        # nothing left in the range: the second comes from the kernel, still distinct and bindable
        two = free_ports(2, kind=kind)
        assert two[0] == base + 2 and two[1] not in (base, base + 1, base + 2)
    finally:
        for s in held:
            assert s is not None
            s.close()


def test_free_ports_fall_back_to_the_kernel_when_there_is_no_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uri, "_ephemeral_low", lambda: 1024)
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p >= 1024 for p in ports)


def test_free_ports_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind='sctp' expected='udp' or 'tcp'"):
        free_ports(kind="sctp")
    with pytest.raises(ValueError, match="n=0 expected=at least 1"):
        free_ports(0)
