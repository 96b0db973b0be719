"""The one output format of every ``tickline bench``: table, JSON, HDR histograms, plot, compare.

A bench measures *cases*; each case holds one HdrHistogram of nanosecond
values per run (several runs give the run-to-run noise that ``bench compare``
needs).  A bench builds a :class:`Report`, adds its cases, and hands it to
:func:`emit`, which prints the table and writes what the user asked for with
the options :func:`add_output_args` adds:

- ``--json FILE``: schema ``tickline-bench/1`` -- ``bench``, ``machine``,
  ``command`` (argv), ``versions``, ``started``, ``reference`` (the peer that
  ratios are taken against), ``extra`` (bench-specific facts) and ``cases``:
  each with ``name``, ``label``, ``group``, ``unit``, ``count``, ``p50``,
  ``p90``, ``p99``, ``p99_9``, ``p99_99``, ``max`` (of all runs merged, in
  ``unit``), ``throughput`` (per second, or null), ``peer_ratio`` (p50 over the
  reference's p50 in the same group, or null), ``runs`` (the same figures per
  run), ``skipped`` (the reason, or null) and ``extra``;
- ``--hgrm DIR``: per case ``NAME.hgrm`` (HdrHistogram's percentile text) and
  ``NAME.hlog`` (the compressed base64 histogram log, one interval per run,
  as HdrHistogram's log tools read it);
- ``--plot FILE.png|FILE.svg``: latency against 1/(1-percentile) on a log axis,
  one line per case (HdrHistogram's percentile-distribution plot), matplotlib.

Output paths are checked before the bench starts (:func:`check_output_args`),
so a long run never ends in an unwritable path.

Adopting it in a bench (``bench ping`` and ``bench codecs`` show both shapes):
``benchkit.add_output_args(parser)``; ``set_defaults(func=lambda a:
benchkit.run_guarded("tickline bench NAME", cmd, a))``; in ``cmd`` build
``report = benchkit.Report("NAME", reference=PEER_LABEL)``, and per run and
case ``c = report.case(name, label=impl, group=what_is_compared)``,
``c.histograms.append(benchkit.histogram_of(samples_ns))`` (and
``c.run_throughputs`` / ``c.throughput`` where it has a rate); then
``benchkit.emit(report, args)``.  A bench that only has per-run means records
one single-value histogram per run (as ``bench codecs`` does).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SCHEMA = "tickline-bench/1"
#: The percentiles every case reports, and their JSON keys.
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9),
                                              ("p99_99", 99.99))
#: Histogram range: 1 ns .. 60 s at 3 significant digits.
LOWEST_NS, HIGHEST_NS, DIGITS = 1, 60_000_000_000, 3
#: Nanoseconds per unit.
UNIT_SCALE = {"ns": 1.0, "us": 1_000.0, "ms": 1_000_000.0}


class BenchInputError(Exception):
    """The user's input is unusable (fault=user); the CLI prints it without a traceback."""


def new_histogram() -> Any:
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    return HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)


def histogram_of(samples_ns: Iterable[int]) -> Any:
    """A histogram of nanosecond samples (values below 1 ns are recorded as 1, above 60 s as 60 s)."""
    h = new_histogram()
    record = h.record_value
    for s in samples_ns:
        record(min(max(1, int(s)), HIGHEST_NS))
    return h


def summarize(h: Any, unit: str = "us") -> dict[str, Any]:
    """count, the percentiles and max of one histogram, in ``unit``."""
    scale = UNIT_SCALE[unit]
    out: dict[str, Any] = {"count": int(h.get_total_count())}
    for key, p in PERCENTILES:
        out[key] = round(h.get_value_at_percentile(p) / scale, 3) if out["count"] else None
    out["max"] = round(h.get_max_value() / scale, 3) if out["count"] else None
    return out


@dataclass
class Case:
    """One measured (or skipped) case.  ``histograms``: one per run, nanosecond values."""

    name: str
    label: str = ""
    group: str = ""
    unit: str = "us"
    histograms: list[Any] = field(default_factory=list)
    throughput: float | None = None
    run_throughputs: list[float] = field(default_factory=list)
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def merged(self) -> Any:
        h = new_histogram()
        for run in self.histograms:
            h.add(run)
        return h


@dataclass
class Report:
    bench: str
    reference: str | None = None
    cases: list[Case] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: ["tickline", *sys.argv[1:]])
    started: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    def case(self, name: str, **kwargs: Any) -> Case:
        """The case called ``name``, created on first use (runs append to it)."""
        for c in self.cases:
            if c.name == name:
                return c
        c = Case(name, **kwargs)
        self.cases.append(c)
        return c

    def peer_ratio(self, case: Case, p50: float | None) -> float | None:
        if self.reference is None or p50 is None or case.label == self.reference:
            return None
        ref = next((c for c in self.cases if c.label == self.reference and c.group == case.group and c.histograms), None)
        if ref is None:
            return None
        ref_p50 = summarize(ref.merged(), ref.unit)["p50"]
        return round(p50 / ref_p50, 3) if ref_p50 else None

    def to_dict(self) -> dict[str, Any]:
        cases = []
        for c in self.cases:
            d: dict[str, Any] = {"name": c.name, "label": c.label or c.name, "group": c.group, "unit": c.unit}
            if c.histograms:
                d.update(summarize(c.merged(), c.unit))
            else:
                d.update({"count": 0, **{k: None for k, _ in PERCENTILES}, "max": None})
            d["throughput"] = c.throughput
            d["peer_ratio"] = self.peer_ratio(c, d["p50"])
            d["runs"] = [summarize(h, c.unit) for h in c.histograms]
            for run, t in zip(d["runs"], c.run_throughputs):
                run["throughput"] = t
            d["skipped"] = c.skipped
            d["extra"] = c.extra
            cases.append(d)
        return {"schema": SCHEMA, "bench": self.bench, "machine": machine_info(), "command": self.command,
                "versions": versions(), "started": self.started, "reference": self.reference,
                "extra": self.extra, "cases": cases}


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)), "kernel": platform.release(), "hostname": platform.node()}


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("tickline", "hdrhistogram", "pyzmq", "protobuf", "msgpack"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- output


def add_output_args(p: argparse.ArgumentParser, json_help: str = "write the results in the common JSON schema") -> None:
    p.add_argument("--json", metavar="FILE", help=json_help)
    p.add_argument("--hgrm", metavar="DIR", help="write each case's HDR histogram: NAME.hgrm and NAME.hlog")
    p.add_argument("--plot", metavar="FILE", help="draw the percentile distribution to FILE.png or FILE.svg")


def _check_writable_file(path: str, what: str) -> None:
    parent = Path(path).resolve().parent
    if Path(path).is_dir():
        raise BenchInputError(f"output path is a directory: option={what} path={path} fault=user")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BenchInputError(f"output path is not writable: option={what} path={path} fault=user")


def check_output_args(args: argparse.Namespace) -> None:
    """Fail before measuring if an output can't be written (raises :class:`BenchInputError`)."""
    if getattr(args, "json", None) and isinstance(args.json, str) and args.json != "-":
        _check_writable_file(args.json, "--json")
    if getattr(args, "plot", None):
        if Path(args.plot).suffix.lower() not in (".png", ".svg"):
            raise BenchInputError(f"unsupported plot format: option=--plot path={args.plot} expected=.png|.svg fault=user")
        _check_writable_file(args.plot, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BenchInputError("--plot needs matplotlib: pip install 'tickline[bench]' fault=user") from None
    if getattr(args, "hgrm", None):
        d = Path(args.hgrm)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BenchInputError(f"output directory can't be created: option=--hgrm path={d} error={e.strerror} fault=user") from None
        if not os.access(d, os.W_OK | os.X_OK):
            raise BenchInputError(f"output directory is not writable: option=--hgrm path={d} fault=user")


def format_table(report: Report) -> str:
    d = report.to_dict()
    unit = d["cases"][0]["unit"] if d["cases"] else "us"
    ref = f"  vs {report.reference}" if report.reference else ""
    lines = [f"{'case':<28}{'count':>9}{'p50':>10}{'p90':>10}{'p99':>10}{'p99.9':>10}{'p99.99':>10}{'max':>11}"
             f"{'per s':>11}{ref}   ({unit})"]

    def num(v: float | None, w: int) -> str:  # a space before each figure, however wide
        return f" {v:>{w - 1}.3f}" if v is not None else f"{'-':>{w}}"

    for c in d["cases"]:
        if c["skipped"]:
            lines.append(f"{c['name']:<28} skipped: {c['skipped']}")
            continue
        tput = f"{c['throughput']:>11.0f}" if c["throughput"] else f"{'-':>11}"
        ratio = f"  {c['peer_ratio']:.2f}x" if c["peer_ratio"] is not None else ""
        lines.append(f"{c['name']:<28}{c['count']:>9}{num(c['p50'], 10)}{num(c['p90'], 10)}{num(c['p99'], 10)}"
                     f"{num(c['p99_9'], 10)}{num(c['p99_99'], 10)}{num(c['max'], 11)}{tput}{ratio}")
    return "\n".join(lines)


def file_stem(name: str) -> str:
    """A case name as a file name: anything but letters, digits, '.', '-' and '_' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "case"


def write_hgrm(report: Report, directory: str) -> list[Path]:
    from hdrh.log import HistogramLogWriter  # type: ignore[import-untyped]

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for c in report.cases:
        if not c.histograms:
            continue
        stem = file_stem(c.name)
        scale = UNIT_SCALE[c.unit]
        path = d / f"{stem}.hgrm"
        with open(path, "wb") as f:  # hdrh writes bytes
            c.merged().output_percentile_distribution(f, scale)
        written.append(path)
        path = d / f"{stem}.hlog"
        with open(path, "w") as f:
            log = HistogramLogWriter(f)
            log.output_comment(f"tickline bench {report.bench} case={c.name} unit=ns")
            log.output_log_format_version()
            log.output_legend()
            for i, h in enumerate(c.histograms):
                # One interval per run; values are ns, so the max column's ratio is ns per ms.
                log.output_interval_histogram(h, start_time_stamp_sec=i, end_time_stamp_sec=i + 1,
                                              max_value_unit_ratio=1_000_000.0)
        written.append(path)
    return written


#: The percentiles the plot's x axis marks.
_PLOT_TICKS = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)


def plot_points(h: Any, unit: str = "us") -> tuple[list[float], list[float]]:
    """(1/(1-p), latency) points of one histogram, from p=0 to the last recorded percentile."""
    n = int(h.get_total_count())
    scale = UNIT_SCALE[unit]
    xs: list[float] = []
    ys: list[float] = []
    if n == 0:
        return xs, ys
    top = 1.0 - 1.0 / n if n > 1 else 0.5
    k = 0
    while True:
        p = 1.0 - 10 ** (-k / 20.0)  # 20 points per decade of 1/(1-p)
        if p > top:
            break
        xs.append(1.0 / (1.0 - p))
        ys.append(h.get_value_at_percentile(p * 100.0) / scale)
        k += 1
    xs.append(1.0 / (1.0 - top))
    ys.append(h.get_max_value() / scale)
    return xs, ys


def write_plot(report: Report, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6))
    unit, top = "us", 1.0
    # A colour per label (transport, peer) and a line style per group (message size), so that
    # two dozen lines stay tellable apart.
    labels = list(dict.fromkeys(c.label or c.name for c in report.cases if c.histograms))
    groups = list(dict.fromkeys(c.group for c in report.cases if c.histograms))
    colours = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    styles = ["-", "--", ":", "-."]
    for c in report.cases:
        if not c.histograms:
            continue
        unit = c.unit
        xs, ys = plot_points(c.merged(), c.unit)
        top = max(top, xs[-1])
        ax.plot(xs, ys, label=c.name, color=colours(labels.index(c.label or c.name) % colours.N),
                linestyle=styles[groups.index(c.group) % len(styles)])
    ax.set_xscale("log")
    ax.set_yscale("log")
    shown = [p for p in _PLOT_TICKS if 1.0 / (1.0 - p / 100.0) <= top * 1.01]
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p in shown])
    ax.set_xticklabels([f"{p:g}%" for p in shown])
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"latency ({unit})")
    m = machine_info()
    ax.set_title(f"tickline bench {report.bench}: {m['cpu']} ({m['cpus']} cpus)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def emit(report: Report, args: argparse.Namespace, table: bool = True) -> None:
    """Print the table and write every output the user asked for."""
    if table:
        print(format_table(report), flush=True)
    if getattr(args, "json", None) and isinstance(args.json, str):
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if getattr(args, "hgrm", None):
        n = len(write_hgrm(report, args.hgrm))
        print(f"wrote {n} files to {args.hgrm}")
    if getattr(args, "plot", None):
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")


# ---------------------------------------------------------------- compare


def load(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise BenchInputError(f"can't read bench file: path={path} error={e.strerror} fault=user") from None
    except ValueError as e:
        raise BenchInputError(f"bench file is not JSON: path={path} error={e} fault=user") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("cases"), list):
        raise BenchInputError(f"not a tickline bench file: path={path} expected_schema={SCHEMA} fault=user")
    return doc


def run_noise(case: dict[str, Any], metric: str) -> float | None:
    """Run-to-run noise of one case: the largest relative distance of a run from the runs' median; None with < 2 runs."""
    values = [r[metric] for r in case.get("runs", []) if isinstance(r, dict) and r.get(metric)]
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return max(abs(v - mid) / mid for v in values) if mid else None


@dataclass
class Change:
    name: str
    old: float
    new: float
    ratio: float
    noise: float
    verdict: str  # "slower" | "faster" | "same"


def compare(old: dict[str, Any], new: dict[str, Any], metric: str = "p50", min_noise: float = 0.05,
            default_noise: float = 0.10) -> tuple[list[Change], list[str]]:
    """Per-case ratio new/old of ``metric``; a change counts when it exceeds the noise band.

    The band is the larger of the two files' run-to-run noise for the case (or
    ``default_noise`` when a file has a single run), never below ``min_noise``.
    Returns the changes and the names of cases in only one file.
    """
    old_cases = {c["name"]: c for c in old["cases"] if not c.get("skipped") and c.get(metric)}
    new_cases = {c["name"]: c for c in new["cases"] if not c.get("skipped") and c.get(metric)}
    changes = []
    for name, n in new_cases.items():
        o = old_cases.get(name)
        if o is None:
            continue
        noises = [run_noise(o, metric), run_noise(n, metric)]
        noise = max(min_noise, *[x if x is not None else default_noise for x in noises])
        ratio = n[metric] / o[metric]
        verdict = "slower" if ratio > 1 + noise else "faster" if ratio < 1 / (1 + noise) else "same"
        changes.append(Change(name, o[metric], n[metric], ratio, noise, verdict))
    unmatched = sorted(set(old_cases) ^ set(new_cases))
    return changes, unmatched


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit status: 0 nothing slower beyond the noise, 1 some case slower, 2 bad input."""
    try:
        old, new = load(args.old), load(args.new)
    except BenchInputError as e:
        print(f"tickline bench compare: {e}", file=sys.stderr)
        return 2
    metric = args.metric
    valid = [k for k, _ in PERCENTILES] + ["max"]
    if metric not in valid:
        print(f"tickline bench compare: unknown metric: metric={metric} expected={'|'.join(valid)} fault=user", file=sys.stderr)
        return 2
    changes, unmatched = compare(old, new, metric, min_noise=args.min_noise)
    if not changes:
        print(f"tickline bench compare: no case in both files: old={args.old} new={args.new} fault=user", file=sys.stderr)
        return 2
    print(f"{'case':<32}{'old ' + metric:>12}{'new ' + metric:>12}{'ratio':>9}{'noise':>8}  verdict")
    for c in changes:
        mark = {"slower": "SLOWER", "faster": "faster", "same": "same"}[c.verdict]
        print(f"{c.name:<32}{c.old:>12.3f}{c.new:>12.3f}{c.ratio:>8.3f}x{c.noise * 100:>7.1f}%  {mark}")
    for name in unmatched:
        print(f"{name:<32} only in one file")
    slower = [c.name for c in changes if c.verdict == "slower"]
    if slower:
        print(f"slower beyond noise: {len(slower)} case(s): {', '.join(slower)}")
        return 1
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("compare", help="per-case ratios of two bench JSON files; exit 1 if slower beyond noise")
    p.add_argument("old", help="the baseline JSON file (written by any bench's --json)")
    p.add_argument("new", help="the JSON file to judge")
    p.add_argument("--metric", default="p50", help="which figure to compare: p50 (default), p90, p99, p99_9, p99_99, max")
    p.add_argument("--min-noise", type=float, default=0.05, metavar="FRACTION",
                   help="the smallest noise band, whatever the runs say (default 0.05)")
    p.set_defaults(func=cmd_compare)


def run_guarded(prog: str, fn: Any, args: argparse.Namespace) -> int:
    """Run a bench command; a :class:`BenchInputError` becomes a one-line message and exit status 2."""
    try:
        check_output_args(args)
        return int(fn(args) or 0)
    except BenchInputError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
