"""The topology file: one TOML file for a whole deployment, validated at start.

Sections (each component reads its own; a key is spelled once):

``[driver]``      ``dir``: the media driver every process shares (required)
``[cluster]``     the sequencer cluster's members and settings (required; ``tickline.cluster.daemon``)
``[sequencer]``   pre-trade risk limits (``tickline.sequencer.service.SequencerLimits``)
``[exchange_sim]`` the simulated venue's streams and modes (``tickline.venue.exchange_service``)
``[venue]``       the venue adapter (``tickline.venue.adapter``); needs ``[exchange_sim]``
``[[flow]]``      order-flow clients (``tickline.sequencer.flow``)
``[[strategy]]``  strategies run by ``tickline strategy run``: ``class`` = "module:Class" and
                  ``section``, the strategy's own section in this file (``[strategies.<name>]``,
                  ``tickline.strategy.config``)
``[fix_gateway]`` the FIX gateway (``tickline fix-gateway``); ``bridge =
                  "tickline.sequencer.fix_venue:from_topology"`` sends its orders through the cluster
``[feed]``        the market-data feed onto ``stream_id``/``channel``: synthetic (``tickline feed synthetic``:
                  ``rate``, ``symbols``, ``start``, ``tick``, ``seed``), or ``source = "archive"``
                  (``tickline feed replay``): a recording replayed, ``recording_id`` or the latest
                  recording of ``from_stream`` (and ``from_channel``); needs ``[archive]``
``[archive]``     the archive daemon (``tickline archive run``, ``ArchiveConfig``'s keys); ``record =
                  [{ channel = "aeron:ipc", stream = 1003 }]``: streams it records from its start

A bad file is refused before anything starts, with the file, the key and the
reason (:class:`TopologyError`): an unknown section or key, a missing section,
a port already in use, a stream that a component reads and nobody publishes.
"""

from __future__ import annotations

import socket
import tomllib
from dataclasses import dataclass, field
from typing import Any

from tickline.sequencer.client import CREDENTIALS_KEY  # the one key every cluster client component names its credentials with

__all__ = ["TopologyError", "Topology", "Process", "load"]

SECTIONS = ("driver", "cluster", "sequencer", "exchange_sim", "venue", "flow", "strategy", "strategies", "feed", "fix_gateway",
            "archive")
REQUIRED = ("driver", "cluster")
STRATEGY_KEYS = {"class", "section"}
SYNTHETIC_KEYS = {"rate", "symbols", "start", "tick", "seed"}
REPLAY_KEYS = {"recording_id", "from_stream", "from_channel"}
FEED_KEYS = {"stream_id", "channel", "source"} | SYNTHETIC_KEYS | REPLAY_KEYS
FEED_SOURCES = ("synthetic", "archive")


class TopologyError(ValueError):
    """A topology file that cannot run: the user's (``fault=user``)."""

    def __init__(self, reason: str, *, file: str, key: str = "", **detail: object) -> None:
        extra = "".join(f" {k}={v}" for k, v in detail.items())
        super().__init__(f"bad topology: {reason}: fault=user file={file}" + (f" key={key}" if key else "") + extra)
        self.file, self.key, self.reason = file, key, reason


@dataclass(frozen=True)
class Process:
    """One child of ``tickline up``: its name, role and ``tickline`` arguments."""

    name: str
    role: str
    argv: tuple[str, ...]
    group: int  # start order: lower first; stopped in the reverse order
    status_file: str = ""


@dataclass
class Topology:
    path: str
    doc: dict[str, Any]
    driver_dir: str
    members: dict[int, tuple[str, int]]
    processes: list[Process] = field(default_factory=list)
    status_dir: str = ""


def _port_free(host: str, port: int, kind: int) -> bool:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _check_cluster_secrets(path: str, cluster: Any) -> bool:
    """The [cluster] secrets the members will need, checked now (with file, key and reason);
    whether the cluster checks its clients' credentials (each client then needs its own)."""
    from tickline.cluster.auth import load_authenticator
    from tickline.cluster.errors import ClusterError

    try:
        cluster.member_key()
    except ClusterError as exc:
        raise TopologyError(f"[cluster]: {exc.what}", file=path, key="cluster.member_key_file", secret_file=exc.fields.get("file", ""),
                            **{k: v for k, v in exc.fields.items() if k not in ("key", "file")}) from None
    if cluster.authenticator != "credentials-file":
        return False  # "none" accepts everyone; a plug-in is checked when the members load it
    if not cluster.credentials_file:
        raise TopologyError("missing key: members check clients' credentials against this file", file=path, key="cluster.credentials_file",
                            expected='a 0600 file (tickline cluster credentials --file FILE ...), or authenticator = "none" on a trusted network')
    try:
        load_authenticator(cluster.authenticator, cluster.credentials_file)
    except (ClusterError, OSError) as exc:
        raise TopologyError(f"[cluster]: {exc}", file=path, key="cluster.credentials_file") from None
    return True


def _check_client_credentials(path: str, value: object, key: str, required: bool) -> None:
    from tickline.cluster.auth import read_credentials
    from tickline.cluster.errors import ClusterError

    if value in (None, ""):
        if required:
            raise TopologyError("missing key: the cluster checks every client's credentials", file=path, key=key,
                                expected="a 0600 file holding principal:secret (tickline cluster credentials --out FILE)")
        return
    if not isinstance(value, str):
        raise TopologyError("not a path", file=path, key=key, value=value)
    try:
        read_credentials(value, key)
    except ClusterError as exc:
        raise TopologyError(exc.what, file=path, key=key, secret_file=value,
                            **{k: v for k, v in exc.fields.items() if k not in ("key", "file")}) from None
    except OSError as exc:
        raise TopologyError("cannot read the credentials file", file=path, key=key, secret_file=value, error=exc.strerror) from None


def _check_feed_source(path: str, feed: dict, has_archive: bool) -> None:
    """``[feed] source``: synthetic (the default) or archive, each with only its own keys."""
    source = feed.get("source", "synthetic")
    if source not in FEED_SOURCES:
        raise TopologyError("unknown feed source", file=path, key="feed.source", value=source, expected="|".join(FEED_SOURCES))
    own, other = (REPLAY_KEYS, SYNTHETIC_KEYS) if source == "archive" else (SYNTHETIC_KEYS, REPLAY_KEYS)
    for k in feed:
        if k in other:
            raise TopologyError("not a key of this feed source", file=path, key=f"feed.{k}", source=source,
                                expected="one of " + ",".join(sorted(own)))
    if source != "archive":
        return
    if not has_archive:
        raise TopologyError("a feed replaying the archive needs an [archive] section", file=path, key="feed.source")
    if ("recording_id" in feed) == ("from_stream" in feed):
        raise TopologyError("name exactly one of recording_id and from_stream", file=path, key="feed.recording_id",
                            expected="recording_id = N, or from_stream = S (its latest recording)")
    for k in ("recording_id", "from_stream"):
        v = feed.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
            raise TopologyError("not a non-negative integer", file=path, key=f"feed.{k}", value=v)
    if not isinstance(feed.get("from_channel", ""), str):
        raise TopologyError("not text", file=path, key="feed.from_channel", value=feed["from_channel"])


def _check_archive(path: str, doc: dict, driver_dir: str, published: dict[tuple[str, int], str]) -> dict[str, object]:
    """``[archive]``: ArchiveConfig's options (validated as the daemon will), on this file's driver, and
    ``record`` naming only streams a component of this file publishes.  The options, defaults filled in."""
    import dataclasses

    from tickline.archive.config import ArchiveConfig, read_archive_section, record_streams
    from tickline.archive.errors import ConfigError as ArchiveConfigError

    try:
        options = read_archive_section(path)
        aeron_dir = options.pop("aeron_dir", driver_dir)
        record = record_streams(options.pop("record", []))
        config = ArchiveConfig.from_env(None, **options)
    except ArchiveConfigError as exc:
        where = exc.fields.get("key") or exc.fields.get("option") or ""
        raise TopologyError(f"[archive]: {exc.what}", file=path, key=f"archive.{where}" if where else "archive",
                            **{k: v for k, v in exc.fields.items() if k not in ("key", "option", "file")}) from None
    if aeron_dir != driver_dir:
        raise TopologyError("the archive must use this file's media driver", file=path, key="archive.aeron_dir", value=aeron_dir,
                            expected=driver_dir)
    for i, (channel, stream) in enumerate(record):
        if (channel, stream) not in published:
            raise TopologyError("a stream nobody publishes", file=path, key=f"archive.record[{i}]", stream=f"{channel}#{stream}",
                                published=",".join(f"{c}#{n}({who})" for (c, n), who in published.items()) or "none")
    return dataclasses.asdict(config)


def load(path: str, *, check_ports: bool = True) -> Topology:
    """Read and validate ``path``; the processes ``tickline up`` would start."""
    import os

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise TopologyError("file not found", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError("not valid TOML", file=path, error=str(exc).replace(" ", "_")) from None
    for k in doc:
        if k not in SECTIONS:
            raise TopologyError("unknown section", file=path, key=k, expected="one of " + ",".join(SECTIONS))
    for k in REQUIRED:
        if not isinstance(doc.get(k), dict):
            raise TopologyError("missing section", file=path, key=k)
    driver = doc["driver"]
    for k in driver:
        if k != "dir":
            raise TopologyError("unknown key", file=path, key=f"driver.{k}", expected="dir")
    if not isinstance(driver.get("dir"), str) or not driver["dir"]:
        raise TopologyError("missing key", file=path, key="driver.dir", expected="the media driver's directory")

    # Each component's own loader checks its section (and names file and key).
    from tickline.cluster.daemon import load_topology
    from tickline.cluster.errors import ClusterError

    try:
        cluster = load_topology(path)
    except ClusterError as exc:
        raise TopologyError(f"[cluster]: {exc}", file=path, key="cluster") from None
    need_credentials = _check_cluster_secrets(path, cluster)

    def client_credentials(value: object, key: str, required: bool = True) -> None:
        """A cluster client's ``cluster_credentials_file``: there when the cluster checks credentials, and usable."""
        _check_client_credentials(path, value, key, required and need_credentials)

    if check_ports:
        for m, (host, port) in cluster.members.items():
            if host != "ipc" and not _port_free(host, port, socket.SOCK_DGRAM):
                raise TopologyError("port in use", file=path, key=f"cluster.members.{m}", port=port)
    from tickline.sequencer.service import ConfigError as SeqConfigError, SequencerLimits

    try:
        SequencerLimits.from_section(doc.get("sequencer", {}), path)
    except (SeqConfigError, TypeError) as exc:
        raise TopologyError(f"[sequencer]: {exc}", file=path, key="sequencer") from None

    streams_published: dict[tuple[str, int], str] = {}
    if "exchange_sim" in doc:
        from tickline.fix_gateway.config import ConfigError as FixConfigError
        from tickline.venue.exchange_service import load_exchange_config

        try:
            ex = load_exchange_config(path)
        except FixConfigError as exc:
            raise TopologyError(f"[exchange_sim]: {exc}", file=path, key="exchange_sim") from None
        streams_published[(ex.streams.report_channel, ex.streams.report_stream_id)] = "exchange_sim"
        if ex.md_stream_id:
            streams_published[(ex.md_channel, ex.md_stream_id)] = "exchange_sim"
    if "venue" in doc:
        if "exchange_sim" not in doc:
            raise TopologyError("a stream nobody publishes: the venue adapter reads the exchange's reports and there is no [exchange_sim]",
                                file=path, key="venue")
        from tickline.venue.adapter import ConfigError as VenueConfigError, load_venue_config

        try:
            venue = load_venue_config(path)
        except (VenueConfigError, TypeError) as exc:
            raise TopologyError(f"[venue]: {exc}", file=path, key="venue") from None
        client_credentials(venue.cluster_credentials_file, f"venue.{CREDENTIALS_KEY}")
    if "feed" in doc:
        feed = doc["feed"]
        if not isinstance(feed, dict):
            raise TopologyError("not a table", file=path, key="feed")
        for k in feed:
            if k not in FEED_KEYS:
                raise TopologyError("unknown key", file=path, key=f"feed.{k}", expected="one of " + ",".join(sorted(FEED_KEYS)))
        sid = feed.get("stream_id")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 < sid < 2**31:
            raise TopologyError("missing or bad key", file=path, key="feed.stream_id", value=sid, expected="a stream id")
        if not isinstance(feed.get("symbols", ["DEMO"]), list) or not feed.get("symbols", ["DEMO"]):
            raise TopologyError("bad key", file=path, key="feed.symbols", expected="a list of symbols")
        _check_feed_source(path, feed, "archive" in doc)
        streams_published[(str(feed.get("channel", "aeron:ipc")), sid)] = "feed"
    archive_options = _check_archive(path, doc, driver["dir"], streams_published) if "archive" in doc else {}

    if "fix_gateway" in doc:
        from tickline.fix_gateway.config import ConfigError as FixConfigError
        from tickline.fix_gateway.gateway import load_config as load_gateway_config

        try:
            gw = load_gateway_config(path)
        except FixConfigError as exc:
            raise TopologyError(f"[fix_gateway]: {exc}", file=path, key="fix_gateway") from None
        # a bridge through the cluster (the sequencer's) is a cluster client; another bridge may use the key too
        client_credentials(gw.cluster_credentials_file, f"fix_gateway.{CREDENTIALS_KEY}", required=gw.bridge.startswith("tickline.sequencer."))
        if check_ports and gw.acceptor is not None and gw.acceptor.port and not _port_free(gw.acceptor.host, gw.acceptor.port, socket.SOCK_STREAM):
            raise TopologyError("port in use", file=path, key="fix_gateway.acceptor.port", port=gw.acceptor.port)

    from tickline.sequencer.cli import FLOW_KEYS

    names: set[str] = set()
    flows = doc.get("flow", [])
    if not isinstance(flows, list):
        raise TopologyError("not an array of tables ([[flow]])", file=path, key="flow")
    for i, f in enumerate(flows):
        for k in f:
            if k not in FLOW_KEYS:
                raise TopologyError("unknown key", file=path, key=f"flow[{i}].{k}", expected="one of " + ",".join(sorted(FLOW_KEYS)))
        name = f.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise TopologyError("each [[flow]] needs a unique name", file=path, key=f"flow[{i}].name", value=name)
        names.add(name)
        client_credentials(f.get(CREDENTIALS_KEY), f"flow[{i}].{CREDENTIALS_KEY}")
    strategies = doc.get("strategy", [])
    if not isinstance(strategies, list):
        raise TopologyError("not an array of tables ([[strategy]])", file=path, key="strategy")
    strategy_sections: list[tuple[str, str, str]] = []  # (name, class, section)
    for i, s in enumerate(strategies):
        for k in s:
            if k not in STRATEGY_KEYS:
                raise TopologyError("unknown key", file=path, key=f"strategy[{i}].{k}", expected="one of " + ",".join(sorted(STRATEGY_KEYS)))
        if not isinstance(s.get("class"), str) or ":" not in s["class"]:
            raise TopologyError("missing key", file=path, key=f"strategy[{i}].class", expected="module:Class")
        if not isinstance(s.get("section"), str):
            raise TopologyError("missing key", file=path, key=f"strategy[{i}].section", expected="the strategy's section, e.g. strategies.mm")
        try:
            from tickline.strategy.config import StrategyConfigError, load_toml
        except ImportError as exc:
            raise TopologyError("the strategy package is not installed", file=path, key=f"strategy[{i}]", error=exc) from None
        try:
            cfg = load_toml(path, s["section"])
        except StrategyConfigError as exc:
            raise TopologyError(f"[{s['section']}]: {exc}", file=path, key=s["section"]) from None
        if cfg.name in names:
            raise TopologyError("two components with one name", file=path, key=f"{s['section']}.name", value=cfg.name)
        names.add(cfg.name)
        if cfg.gateway.get("kind") == "sequencer":
            client_credentials(cfg.gateway.get(CREDENTIALS_KEY), f"{s['section']}.gateway.{CREDENTIALS_KEY}")
        md = (cfg.md_channel, cfg.md_stream)
        if md not in streams_published:
            raise TopologyError("a stream nobody publishes", file=path, key=f"{s['section']}.md_stream", stream=f"{md[0]}#{md[1]}",
                                published=",".join(f"{c}#{n}({who})" for (c, n), who in streams_published.items()) or "none")
        strategy_sections.append((cfg.name, s["class"], s["section"]))

    base = os.path.abspath(path)
    status_dir = os.path.splitext(base)[0] + ".status"
    t = Topology(base, doc, driver["dir"], cluster.members, status_dir=status_dir)
    p = t.processes
    p.append(Process("driver", "media driver", ("driver", "--dir", driver["dir"], "-D", "aeron.threading.mode=SHARED",
                                                 "-D", "aeron.client.liveness.timeout=10000000000"), 0))
    for m in sorted(cluster.members):
        p.append(Process(f"member-{m}", "cluster member", ("cluster", "node", "--config", base, "--member", str(m)), 1))
    if "exchange_sim" in doc:
        p.append(Process("exchange-sim", "venue (simulated)", ("exchange-sim", "--config", base), 2))
    if "archive" in doc:  # with the members: up before anything it records publishes
        p.append(Process("archive", "archive", ("archive", "run", "--config", base, "--aeron-dir", driver["dir"]), 1))
    if "feed" in doc and doc["feed"].get("source", "synthetic") == "archive":
        f = doc["feed"]
        argv = ["feed", "replay", "--stream", str(f["stream_id"]), "--channel", str(f.get("channel", "aeron:ipc")),
                "--aeron-dir", driver["dir"], "--archive-control-channel", str(archive_options.get("control_channel", "aeron:ipc")),
                "--archive-control-stream", str(archive_options["control_stream_id"])]
        if "recording_id" in f:
            argv += ["--recording-id", str(f["recording_id"])]
        else:
            argv += ["--from-stream", str(f["from_stream"])] + (["--from-channel", str(f["from_channel"])] if "from_channel" in f else [])
        p.append(Process("feed", "market data (archive replay)", tuple(argv), 2))
    elif "feed" in doc:
        f = doc["feed"]
        argv = ["feed", "synthetic", "--stream", str(f["stream_id"]), "--channel", str(f.get("channel", "aeron:ipc")),
                "--aeron-dir", driver["dir"], "--symbols", ",".join(map(str, f.get("symbols", ["DEMO"])))]
        for k in ("rate", "start", "tick", "seed"):
            if k in f:
                argv += [f"--{k}", str(f[k])]
        p.append(Process("feed", "market data (synthetic)", tuple(argv), 2))
    if "venue" in doc:
        sf = os.path.join(status_dir, "venue.json")
        p.append(Process("venue", "venue adapter", ("venue", "--config", base, "--status-file", sf), 3, sf))
    if "fix_gateway" in doc:
        p.append(Process("fix-gateway", "FIX gateway", ("fix-gateway", "--config", base), 3))
    for f in flows:
        sf = os.path.join(status_dir, f"{f['name']}.json")
        p.append(Process(f["name"], "order flow", ("sequencer", "flow", "--config", base, "--name", f["name"], "--status-file", sf), 4, sf))
    for name, cls, section in strategy_sections:
        sf = os.path.join(status_dir, f"{name}.json")
        argv = ("strategy", "run", cls, "--config", base, "--section", section, "--aeron-dir", driver["dir"], "--status-file", sf)
        p.append(Process(name, "strategy", argv, 4, sf))
    return t
