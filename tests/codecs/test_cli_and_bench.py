"""The codecs' commands plug into ``tickline``'s CLI; ``tickline bench codecs`` measures every peer (no timing asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

import tickline.cli
from tickline.codecs import bench, load_schema, otf


@pytest.fixture
def codecs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Until tickline.codecs.cli is listed in COMMAND_MODULES, register it for the test alone.
    monkeypatch.setattr(tickline.cli, "COMMAND_MODULES", ["tickline.codecs.cli"])


def test_main_runs_codegen_and_decode(codecs_only: None, schemas_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert tickline.cli.main(["codegen", str(schemas_dir / "example-schema.xml"), "--lang", "python",
                              "-o", str(tmp_path), "--module", "car_codecs"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "car_codecs.py")
    schema = load_schema(schemas_dir / "example-schema.xml")
    from test_layout import hand_encoded_car

    (tmp_path / "car.bin").write_bytes(hand_encoded_car())
    assert tickline.cli.main(["sbe-decode", str(schemas_dir / "example-schema.xml"), str(tmp_path / "car.bin")]) == 0
    assert otf.from_json(capsys.readouterr().out) == otf.decode(schema, hand_encoded_car())[0]


def test_codegen_reports_schema_errors(codecs_only: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text('<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" id="1">\n<types/>\n</sbe:messageSchema>')
    assert tickline.cli.main(["codegen", str(bad), "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == ("schema error (the schema author's fault, fix the schema): file=bad.xml line=1 "
                                               "element=messageSchema: headerType=messageHeader does not name a composite type")
    assert not (tmp_path / "out").exists()


def test_bench_codecs_measures_every_case_against_every_peer(codecs_only: None, capsys: pytest.CaptureFixture[str]) -> None:
    report = bench.run(iterations=20, runs=1)
    assert set(report["results"]) == {"l1_encode", "l1_decode", "l1_field_read", "l1_price_read", "l1_symbol_read",
                                      "er_encode", "er_decode", "book_encode", "book_decode", "book_encode_per_entry",
                                      "book_decode_per_entry", "l1_encode_pack", "l1_decode_unpack", "er_encode_pack",
                                      "er_decode_unpack", "book_encode_per_entry_pack", "book_decode_per_entry_unpack"}
    for case, row in report["results"].items():
        expected = {"sbe", "sbe-cython"} | (set() if "_per_entry" in case else {"protobuf", "msgpack", "json", "struct"})
        assert set(row) == expected, case
        assert all(isinstance(v, float) and v >= 0 for v in row.values())
    assert report["machine"]["protobuf_backend"] == "upb"
    table = bench.format_table(report)
    assert table.splitlines()[1].split() == ["case", "sbe", "sbe-cython", "protobuf", "msgpack", "json", "struct"]
    assert tickline.cli.main(["bench", "codecs", "--iterations", "10", "--runs", "1"]) == 0
    assert "l1_decode" in capsys.readouterr().out


def test_bench_peers_decode_the_same_values() -> None:
    # The benchmark is only fair if every peer does the same work: check they all produce the same L1 tick.
    table = bench.cases()
    values = {peer: fn() for peer, fn in table["l1_decode"].items()}
    assert values["sbe"] == values["sbe-cython"] == values["protobuf"] == values["struct"] == values["msgpack"] == values["json"]
    for case in ("l1_field_read", "l1_price_read", "l1_symbol_read"):
        reads = {peer: fn() for peer, fn in table[case].items()}
        assert len(set(reads.values())) == 1, (case, reads)
    book = {peer: fn() for peer, fn in table["book_decode"].items() if peer in ("sbe", "sbe-cython", "protobuf", "struct")}
    assert book["sbe"] == book["sbe-cython"] == book["protobuf"] == book["struct"]
    assert table["book_decode_per_entry"]["sbe"]() == table["book_decode_per_entry"]["sbe-cython"]() == book["sbe"]
    # Both ways of encoding the book write the same bytes, in both kinds of codecs.
    written = set()
    for case in ("book_encode", "book_encode_per_entry"):
        for peer in ("sbe", "sbe-cython"):
            table[case][peer]()
            written.add(repr(table["book_decode"][peer]()))  # decodes the buffer the encode just wrote
    assert len(written) == 1
    # The one-call rows read the same values (TopOfBook's unpack() has seqNum too, None: the bench wraps at version 0,
    # before seqNum), and write the same bytes.
    for peer in ("sbe", "sbe-cython"):
        assert table["l1_decode_unpack"][peer]() == values["sbe"] + (None,)
        er = table["er_decode"][peer]()
        fixed, text = table["er_decode_unpack"][peer]()
        assert fixed + (text,) == er
        head, bids, asks = table["book_decode_per_entry_unpack"][peer]()
        assert (*head[:3], bids, asks) == book["sbe"]
    for case, by_field in (("l1_encode_pack", "l1_encode"), ("er_encode_pack", "er_encode"),
                           ("book_encode_per_entry_pack", "book_encode_per_entry")):
        decoded = "er_decode" if case.startswith("er") else "l1_decode" if case.startswith("l1") else "book_decode"
        for peer in ("sbe", "sbe-cython"):
            table[decoded][peer]()
            table[by_field][peer]()
            before = table[decoded][peer]()
            table[case][peer]()
            assert table[decoded][peer]() == before, (case, peer)


def test_codegen_warnings_mode_and_strict_mode(codecs_only: None, write_schema: Callable[..., Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_schema('<sbe:message name="M" id="1">\n<field name="from" id="1" type="uint8"/>\n</sbe:message>')
    assert tickline.cli.main(["codegen", str(path), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == ("schema warning (the schema author's, tickline worked around it): file=schema.xml "
                                    "line=9 element=field name=from: name=from is a Python keyword; the generated property is from_")
    assert "def from_(self) -> int:" in (tmp_path / "out" / "t.py").read_text()
    assert tickline.cli.main(["codegen", str(path), "--strict", "-o", str(tmp_path / "strict")]) == 1
    assert "(an error in strict mode)" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()
