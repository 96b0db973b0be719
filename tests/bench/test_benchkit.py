"""The common bench output (tickline.benchkit): JSON schema, .hgrm/.hlog files, plot, compare.

Histograms are fed known values, so every percentile checked here is exact
(values below 2048 ns are recorded exactly at 3 significant digits)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import tickline.cli
from tickline import benchkit


def _report(runs: list[list[int]], ref_runs: list[list[int]] | None = None, name: str = "fast/32") -> benchkit.Report:
    r = benchkit.Report("unit", reference="ref", command=["tickline", "bench", "unit"])
    c = r.case(name, label="fast", group="32 B")
    c.histograms = [benchkit.histogram_of(v) for v in runs]
    c.run_throughputs = [1000.0 * (i + 1) for i in range(len(runs))]
    c.throughput = sum(c.run_throughputs) / len(runs)
    if ref_runs is not None:
        ref = r.case("ref/32", label="ref", group="32 B")
        ref.histograms = [benchkit.histogram_of(v) for v in ref_runs]
    r.case("absent/32", label="absent", group="32 B").skipped = "no such peer here"
    return r


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"json": None, "hgrm": None, "plot": None, **kw})


def test_json_schema_round_trip_with_exact_percentiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = list(range(1, 1001))  # 1..1000 ns, once each
    report = _report([ns, ns], ref_runs=[[2 * v for v in ns]])
    out = tmp_path / "r.json"
    benchkit.emit(report, _args(json=str(out)))
    doc = benchkit.load(str(out))
    assert doc["schema"] == "tickline-bench/1" and doc["bench"] == "unit" and doc["reference"] == "ref"
    assert doc["command"] == ["tickline", "bench", "unit"]
    assert {"cpu", "cpus", "kernel"} <= set(doc["machine"]) and "python" in doc["versions"]
    fast, ref, absent = doc["cases"]
    assert fast["name"] == "fast/32" and fast["unit"] == "us" and fast["count"] == 2000
    assert (fast["p50"], fast["p90"], fast["p99"], fast["p99_9"], fast["p99_99"], fast["max"]) == \
        (0.5, 0.9, 0.99, 0.999, 1.0, 1.0)
    assert fast["throughput"] == 1500.0
    assert fast["peer_ratio"] == 0.5  # p50 500 ns against the reference's 1000 ns
    assert [(run["count"], run["p50"], run["throughput"]) for run in fast["runs"]] == [(1000, 0.5, 1000.0), (1000, 0.5, 2000.0)]
    assert ref["p50"] == 1.0 and ref["peer_ratio"] is None
    assert absent["skipped"] == "no such peer here" and absent["count"] == 0 and absent["p50"] is None
    table = capsys.readouterr().out
    assert "fast/32" in table and "0.50x" in table and "absent/32                    skipped: no such peer here" in table


def test_hgrm_text_has_the_recorded_percentiles_and_hlog_decodes(tmp_path: Path) -> None:
    from hdrh.log import HistogramLogReader  # type: ignore[import-untyped]

    ns = list(range(1, 1001))
    report = _report([ns, [7] * 10])
    files = benchkit.write_hgrm(report, str(tmp_path))
    assert sorted(p.name for p in files) == ["fast_32.hgrm", "fast_32.hlog"]  # skipped cases write nothing
    text = (tmp_path / "fast_32.hgrm").read_text()
    assert text.split()[:4] == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")][1:]
    assert len(rows) > 20
    merged = sorted(ns + [7] * 10)
    for value, percentile, total, *_ in rows:
        # Every row: the value (in us) is the TotalCount-th smallest value recorded, exactly.
        assert round(float(value) * 1000) == merged[int(total) - 1], (value, total)
        assert float(percentile) == pytest.approx(int(total) / 1010, abs=1 / 1010)
    assert rows[0][:3] == ["0.001", "0.000000000000", "1"] and rows[-1][:3] == ["1.000", "1.000000000000", "1010"]
    assert "#[Max     =        1.000," in text
    reader = HistogramLogReader(str(tmp_path / "fast_32.hlog"), benchkit.new_histogram())
    intervals = []
    while (h := reader.get_next_interval_histogram()) is not None:
        intervals.append((h.get_total_count(), h.get_value_at_percentile(50), h.get_max_value()))
    assert intervals == [(1000, 500, 1000), (10, 7, 7)]


def test_plot_writes_png_and_svg(tmp_path: Path) -> None:
    report = _report([list(range(1, 1001))], ref_runs=[list(range(100, 5000))])
    benchkit.write_plot(report, str(tmp_path / "p.png"))
    benchkit.write_plot(report, str(tmp_path / "p.svg"))
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "p.svg").read_text()
    assert "<svg" in svg and "fast/32" in svg and "ref/32" in svg
    xs, ys = benchkit.plot_points(report.cases[0].merged())
    assert xs[0] == 1.0 and ys[0] == 0.001 and ys[-1] == 1.0 and xs == sorted(xs) and ys == sorted(ys)
    assert xs[-1] == pytest.approx(1000.0)  # 1/(1 - (1 - 1/n)) with n = 1000 values


def _write(path: Path, p50_runs: list[int]) -> str:
    """A file whose one case has a run per entry, each run's values all equal to that p50 (ns)."""
    report = benchkit.Report("unit")
    c = report.case("tcp/32")
    c.histograms = [benchkit.histogram_of([v] * 5) for v in p50_runs]
    path.write_text(json.dumps(report.to_dict()))
    return str(path)


def test_compare_flags_a_real_change_and_not_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path / "old.json", [1000, 1020, 980])
    slower = _write(tmp_path / "slower.json", [1500, 1490, 1510])
    same = _write(tmp_path / "same.json", [1010, 990, 1030])
    assert tickline.cli.main(["bench", "compare", old, slower]) == 1
    out = capsys.readouterr().out
    assert "SLOWER" in out and "1.500x" in out and "slower beyond noise: 1 case(s): tcp/32" in out
    assert tickline.cli.main(["bench", "compare", old, same]) == 0
    assert "same" in capsys.readouterr().out
    assert tickline.cli.main(["bench", "compare", slower, old]) == 0  # faster is not a failure
    assert "faster" in capsys.readouterr().out
    # A noisy baseline widens the band: +25% is inside runs that already spread by 40%.
    noisy = _write(tmp_path / "noisy.json", [1000, 1400, 800])
    a_bit_slower = _write(tmp_path / "bit.json", [1250, 1240, 1260])
    assert tickline.cli.main(["bench", "compare", noisy, a_bit_slower]) == 0
    assert tickline.cli.main(["bench", "compare", old, a_bit_slower]) == 1


def test_compare_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path / "old.json", [1000])
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"schema": "something-else"}')
    assert tickline.cli.main(["bench", "compare", old, str(tmp_path / "junk.json")]) == 2
    assert "bench file is not JSON: path=" in capsys.readouterr().err
    assert tickline.cli.main(["bench", "compare", old, str(tmp_path / "other.json")]) == 2
    assert "not a tickline bench file" in capsys.readouterr().err
    assert tickline.cli.main(["bench", "compare", old, str(tmp_path / "missing.json")]) == 2
    assert "can't read bench file" in capsys.readouterr().err
    assert tickline.cli.main(["bench", "compare", old, old, "--metric", "p42"]) == 2
    assert "unknown metric: metric=p42" in capsys.readouterr().err


def test_output_paths_are_checked_before_measuring(tmp_path: Path) -> None:
    with pytest.raises(benchkit.BenchInputError, match="output path is not writable: option=--json"):
        benchkit.check_output_args(_args(json=str(tmp_path / "no" / "such" / "dir" / "r.json")))
    with pytest.raises(benchkit.BenchInputError, match="unsupported plot format: option=--plot .* expected=.png|.svg"):
        benchkit.check_output_args(_args(plot=str(tmp_path / "p.html")))
    (tmp_path / "file").write_text("")
    with pytest.raises(benchkit.BenchInputError, match="output directory can't be created: option=--hgrm"):
        benchkit.check_output_args(_args(hgrm=str(tmp_path / "file" / "sub")))
    benchkit.check_output_args(_args(json=str(tmp_path / "ok.json"), hgrm=str(tmp_path / "h"), plot=str(tmp_path / "p.svg")))
    assert (tmp_path / "h").is_dir()


def test_bench_codecs_writes_the_common_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "codecs.json"
    assert tickline.cli.main(["bench", "codecs", "--iterations", "10", "--runs", "2", "--json", str(out),
                              "--hgrm", str(tmp_path / "h")]) == 0
    doc = benchkit.load(str(out))
    names = {c["name"] for c in doc["cases"]}
    assert {"l1_decode/sbe", "l1_decode/protobuf", "book_encode/json"} <= names
    for c in doc["cases"]:
        assert c["unit"] == "ns" and c["count"] == 2 and len(c["runs"]) == 2
    assert (tmp_path / "h" / "l1_decode_sbe.hgrm").exists()
    assert "l1_decode" in capsys.readouterr().out
