"""Generated encoders write straight into an Aeron ``BufferClaim`` (the embedded driver's IPC), and the
decoders read the claim and the poll's view: no copy on either side, and no view of the claim kept past the encoder's calls."""

from __future__ import annotations

import array
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tickline.codecs import MessageError, load_schema, otf
from tickline.codecs.ir import Schema

from codecs_helpers import import_generated
from test_layout import FIELDS


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, schemas_dir: Path, codec_kind: str) -> tuple[Schema, ModuleType]:
    schema = load_schema(schemas_dir / "example-schema.xml")
    return schema, import_generated(schema, tmp_path_factory.mktemp("claim"), kind=codec_kind)


def encode_car(enc: Any) -> None:
    """Every kind of write the encoder makes: numbers, a char array, a set, composites, a group (its block
    zeroed), nested groups and text var data."""
    enc.serial_number = 1234
    enc.model_year = 2013
    enc.vehicle_code = "abcdef"
    enc.some_numbers = (1, 2, 3, 4)
    enc.engine.capacity = 2000
    fuel = enc.fuel_figures_count(1)
    entry = fuel.next()
    entry.speed = 30
    entry.mpg = 35.5
    entry.put_usage_description("Urban Cycle")
    perf = enc.performance_figures_count(1)
    p = perf.next()
    p.octane_rating = 95
    acc = p.acceleration_count(1)
    a = acc.next()
    a.mph = 30
    a.seconds = 4.0
    enc.put_manufacturer("Honda")
    enc.put_model("Civic VTi")
    enc.put_activation_code("abcdef")


def claimed(aeron: Any, stream_id: int, length: int) -> tuple[Any, Any, Any]:
    """An IPC subscription and publication on ``stream_id``, and a claim of ``length`` bytes in it."""
    from tickline.transport import BufferClaim

    sub = aeron.add_subscription("aeron:ipc", stream_id)
    pub = aeron.add_publication("aeron:ipc", stream_id)
    claim = BufferClaim()
    deadline = time.monotonic() + 5.0
    while not pub.is_connected or pub.try_claim(length, claim) <= 0:
        assert time.monotonic() < deadline, "no connected publication to claim in"
        time.sleep(0.0005)
    return sub, pub, claim


def poll_one(sub: Any, handler: Any) -> None:
    deadline = time.monotonic() + 5.0
    while sub.poll(handler, 1) == 0:
        assert time.monotonic() < deadline, "the committed message never arrived"
        time.sleep(0.0005)


def test_encode_into_a_claim_and_decode_from_the_poll_view(aeron: Any, car: tuple[Schema, ModuleType]) -> None:
    schema, mod = car
    reference = bytearray(512)
    ref = mod.CarEncoder().wrap_and_apply_header(reference, 0)
    encode_car(ref)
    length = 8 + ref.encoded_length

    sub, pub, claim = claimed(aeron, 31, length)
    enc = mod.CarEncoder().wrap_and_apply_header(claim, 0)  # used to raise: object does not support item assignment
    encode_car(enc)
    assert enc.encoded_length == length - 8
    enc.pack(*mod.decode(reference).unpack())  # the root block again, in one call: the same bytes, written into the claim
    # The generated decoder reads the claim too, before it is published (char arrays and var data included).
    assert mod.decode(claim).to_dict() == mod.decode(reference).to_dict()
    assert otf.decode(schema, claim) == otf.decode(schema, bytes(reference[:length]))
    claim.commit()

    # The encoder kept the claim, not a view of it: once committed, a late write is refused instead of
    # landing in a log buffer the subscriber may already be reading (struct reports the refused buffer as a
    # TypeError).
    with pytest.raises(TypeError, match="read-write bytes-like object, not tickline._aeron.BufferClaim"):
        enc.serial_number = 1
    with pytest.raises(TypeError, match="read-write bytes-like object, not tickline._aeron.BufferClaim"):
        enc.vehicle_code = "zzzzzz"
    # pack() checks the length first, in both kinds: a committed claim has none.
    with pytest.raises(MessageError, match="buffer too small: block needs"):
        enc.pack(*mod.decode(reference).unpack())

    got: list[tuple[bytes, int, str, list[str], dict[str, Any]]] = []

    def handler(view: memoryview, header: Any) -> None:
        dec = mod.decode(view)  # straight from the read-only view over the log
        fuel = [(f.speed, f.usage_description()) for f in dec.fuel_figures()]
        perf = [[(a.mph, a.seconds) for a in p.acceleration()] for p in dec.performance_figures()]
        got.append((bytes(view), dec.serial_number, dec.vehicle_code, [str(fuel), str(perf), dec.manufacturer()],
                    otf.decode(schema, view)[0]["fields"]))

    poll_one(sub, handler)
    [(data, serial, code, parts, fields)] = got
    assert data == bytes(reference[:length])
    assert (serial, code) == (1234, "abcdef")
    assert parts == ["[(30, 'Urban Cycle')]", "[[(30, 4.0)]]", "Honda"]
    assert fields["model"] == "Civic VTi" and fields["someNumbers"] == [1, 2, 3, 4]


def test_an_aborted_claim_refuses_later_writes_and_publishes_nothing(aeron: Any, car: tuple[Schema, ModuleType]) -> None:
    _, mod = car
    sub, pub, claim = claimed(aeron, 32, 128)
    enc = mod.CarEncoder().wrap_and_apply_header(claim, 0)
    enc.serial_number = 7
    claim.abort()
    with pytest.raises(TypeError, match="read-write bytes-like object, not tickline._aeron.BufferClaim"):
        enc.vehicle_code = "zzzzzz"
    with pytest.raises(MessageError, match="buffer too small: block needs 57 bytes, buffer length=0"):
        enc.fuel_figures_count(1)  # an inactive claim has no bytes
    assert pub.offer(b"after") > 0
    got: list[bytes] = []
    poll_one(sub, lambda view, header: got.append(bytes(view)))
    assert got == [b"after"]  # the aborted frame was padding, skipped


def test_otf_decode_releases_its_view_even_when_the_input_is_hostile(car: tuple[Schema, ModuleType]) -> None:
    # An array refuses to grow while a view of it is alive: it shows whether decode kept one (a claim's view
    # kept past a failed decode would keep the claim exported after commit).
    schema, mod = car
    data = mod.CarEncoder.from_dict(FIELDS)
    arr = array.array("B", data)
    assert otf.decode(schema, arr)[0]["fields"]["model"] == "Civic VTi"
    arr.append(0)
    truncated = array.array("B", data[:-3])
    with pytest.raises(MessageError, match="message truncated") as failure:
        otf.decode(schema, truncated)
    assert failure.value.__traceback__ is not None  # the frames stay alive with the exception
    truncated.append(0)
