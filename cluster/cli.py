"""``tickline cluster ...`` commands.

- ``tickline cluster node --config FILE --member N``: run a member (see :mod:`.daemon`);
- ``tickline cluster tool --config FILE VERB``: operate a running cluster, after Aeron's
  ClusterTool: ``status``, ``describe``, ``errors``, ``snapshot --member N``, ``step-down``,
  ``suspend``, ``resume``, ``shutdown`` (all but status and describe need an admin credential:
  ``--credentials FILE`` or ``TICKLINE_CLUSTER_CREDENTIALS_FILE``, a 0600 file holding
  ``principal:secret``); offline, from a member's data directory: ``recovery-plan`` and
  ``log dump`` (see cluster/README.md, "Operating a cluster");
- ``tickline cluster submit --config FILE --schema XML MESSAGE key=value ...``: send one
  message to the service and print the answer;
- ``tickline cluster keygen FILE``: a new cluster key (0600) for ``member_key_file``;
- ``tickline cluster credentials --file F --principal P [--roles client,admin] --out C``:
  a new secret for P, its hash appended to the credentials file F, and ``P:secret``
  written to C (0600) for the client or operator;
- ``tickline cluster sim [--seed N | --seeds N --start S]``: the deterministic simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from typing import Any

from tickline.logs import add_arguments as add_log_arguments


def _cmd_node(args: argparse.Namespace) -> int:
    from tickline.logs import argv_of

    from . import daemon
    return daemon.main(["--config", args.config, "--member", str(args.member), *argv_of(args)])


def _load(args: argparse.Namespace) -> tuple[Any, bytes]:
    """The topology and the admin credential (``--credentials`` or
    TICKLINE_CLUSTER_CREDENTIALS_FILE; empty if neither); a ClusterError or OSError names the problem."""
    from .auth import read_credentials
    from .daemon import load_topology
    if not getattr(args, "config", None):
        from .errors import ConfigError
        raise ConfigError("this command needs the topology file", key="--config")
    topo = load_topology(args.config)
    credentials = b""
    cred_file = getattr(args, "credentials", None) or os.environ.get("TICKLINE_CLUSTER_CREDENTIALS_FILE")
    if cred_file:
        credentials = read_credentials(cred_file, "credentials")
    return topo, credentials


def _load_or_say(args: argparse.Namespace) -> tuple[Any, bytes] | None:
    """:func:`_load`, or None after printing why not."""
    from .errors import ClusterError
    try:
        return _load(args)
    except (ClusterError, OSError) as exc:
        print(f"error: {exc}")
        return None


def _cmd_tool(args: argparse.Namespace) -> int:
    from .aeron_io import ClusterLink, query_status
    loaded = _load_or_say(args)
    if loaded is None:
        return 2
    topo, credentials = loaded
    action = {"status": 0, "snapshot": 1, "step-down": 2}[args.action]
    targets = sorted(topo.members)
    if args.action == "snapshot":
        if args.member is None:
            print("error: snapshot needs --member N: fault=user")
            return 2
        if args.member not in topo.members:
            print(f"error: member not in topology: member={args.member} members={','.join(map(str, targets))} fault=user")
            return 2
        targets = [args.member]
    print(f"{'member':>6} {'role':<14} {'term':>6} {'leader':>6} {'log':>12} {'commit':>12} {'applied':>12} {'snapshot':>12} {'dropped':>8} {'unauth':>8}")
    rc = 0
    with ClusterLink(topo.members, aeron_base=topo.aeron_dir, credentials=credentials) as link:
        for m in targets:
            act = action
            if args.action == "step-down":
                st = query_status(link, m)
                act = 2 if st is not None and st.role == "leader" else 0
            st = query_status(link, m, act)
            if st is None:
                print(f"{m:>6} {'(no answer)':<14}")
                rc = 1
                continue
            if st.refused:
                print(f"error: member={m} refused {args.action}: an admin credential is needed (--credentials FILE) fault=user")
                rc = 1
            leader = "-" if st.leader < 0 else st.leader
            print(f"{st.member:>6} {st.role:<14} {st.term:>6} {leader:>6} {st.log_position:>12} {st.commit_position:>12} "
                  f"{st.applied_position:>12} {st.base_position:>12} {st.dropped:>8} {st.unauthenticated:>8}")
    return rc


def _targets(args: argparse.Namespace, topo: Any) -> list[int] | None:
    if getattr(args, "member", None) is None:
        return sorted(topo.members)
    if args.member not in topo.members:
        print(f"error: member not in topology: member={args.member} members={','.join(map(str, sorted(topo.members)))} fault=user")
        return None
    return [args.member]


def _detail(resp: Any) -> dict[str, Any]:
    try:
        d = json.loads(resp.detail) if resp.detail else {}
    except ValueError:
        d = {"error": f"answer is not JSON: {resp.detail[:200]!r}"}
    return d if isinstance(d, dict) else {"answer": d}


def _refused(member: int, verb: str, resp: Any) -> str | None:
    from .wire import AdminCode
    if resp.code == AdminCode.REFUSED:
        return f"error: member={member} refused {verb}: an admin credential is needed (--credentials FILE) fault=user"
    if resp.code == AdminCode.ERROR:
        return f"error: member={member} could not {verb}: {_detail(resp).get('error', resp.detail)}"
    return None


def _describe_lines(d: dict[str, Any]) -> list[str]:
    leader = d.get("leader", -1)
    out = [f"member {d['member']}: {d['role']} term={d['term']} leader={'-' if leader < 0 else leader} "
           f"voted_for={'-' if d.get('voted_for', -1) < 0 else d['voted_for']} pid={d.get('pid')}",
           f"  log={d['log_start']}..{d['log_end']} commit={d['commit']} applied={d['applied']} snapshot={d['snapshot']} "
           f"suspended={'yes' if d.get('suspended') else 'no'} stopping={'yes' if d.get('stopping') else 'no'} "
           f"sessions={d.get('sessions')} timers={d.get('timers')} errors={d.get('errors', 0)}"]
    snaps = d.get("snapshots") or []
    if snaps:
        out.append("  snapshots: " + "; ".join(f"{s['file']} position={s['position']} term={s['term']} bytes={s['bytes']}" for s in snaps))
    else:
        out.append("  snapshots: none")
    if d.get("followers"):
        out.append("  followers: " + ", ".join(f"{p} match={f['match']}" for p, f in d["followers"].items()))
    if d.get("catch_up_to") is not None:
        out.append(f"  catching up to {d['catch_up_to']} (log damaged at start: no vote until then)")
    out.append(f"  data_dir={d.get('data_dir')}")
    return out


def _ask_each(args: argparse.Namespace, action: int) -> list[tuple[int, Any]] | None:
    """Send ``action`` to each member (``--member``: that one) and return (member, its answer
    or None); None after printing why the command could not start."""
    from .aeron_io import ClusterLink
    from .admin import admin_request
    loaded = _load_or_say(args)
    if loaded is None:
        return None
    topo, credentials = loaded
    targets = _targets(args, topo)
    if targets is None:
        return None
    out = []
    with ClusterLink(topo.members, aeron_base=topo.aeron_dir, credentials=credentials) as link:
        for m in targets:
            got = admin_request(link, m, action, timeout=args.timeout)
            out.append((m, got[0] if got else None))
    return out


def _cmd_describe(args: argparse.Namespace) -> int:
    from .wire import ClusterAction
    answers = _ask_each(args, ClusterAction.DESCRIBE)
    if answers is None:
        return 2
    rc = 0
    docs = []
    for m, resp in answers:
        if resp is None:
            rc = 1
            docs.append({"member": m, "answer": None})
            if not args.json:
                print(f"member {m}: (no answer)")
            continue
        d = _detail(resp)
        docs.append(d)
        if not args.json:
            print("\n".join(_describe_lines(d)))
    if args.json:
        print(json.dumps(docs, indent=2, sort_keys=True))
    return rc


def _cmd_errors(args: argparse.Namespace) -> int:
    from .wire import ClusterAction
    answers = _ask_each(args, ClusterAction.ERRORS)
    if answers is None:
        return 2
    rc = 0
    for m, resp in answers:
        if resp is None:
            print(f"member {m}: (no answer)")
            rc = 1
            continue
        problem = _refused(m, "errors", resp)
        if problem:
            print(problem)
            rc = 1
            continue
        d = _detail(resp)
        print(f"member {m}: {d.get('total', 0)} error line(s) since start, the last {d.get('kept', 0)} kept")
        for e in d.get("errors", []):
            print(f"  {e['time']} {e['line']}")
    return rc


def _find_leader(link: Any, topo: Any) -> int | None:
    from .aeron_io import query_status
    for m in sorted(topo.members):
        st = query_status(link, m, timeout=1.0)
        if st is not None and st.role == "leader":
            return int(m)
        if st is not None and st.leader >= 0 and st.leader in topo.members:
            st2 = query_status(link, st.leader, timeout=0.5)
            if st2 is not None and st2.role == "leader":
                return st.leader
    return None


def _cmd_log_action(args: argparse.Namespace) -> int:
    """suspend / resume: appended by the leader, answered once applied."""
    from .aeron_io import ClusterLink
    from .admin import admin_request
    from .wire import AdminCode, ClusterAction
    loaded = _load_or_say(args)
    if loaded is None:
        return 2
    topo, credentials = loaded
    action = {"suspend": ClusterAction.SUSPEND, "resume": ClusterAction.RESUME}[args.verb]
    with ClusterLink(topo.members, aeron_base=topo.aeron_dir, credentials=credentials) as link:
        leader = _find_leader(link, topo)
        if leader is None:
            print(f"error: no leader answered: {args.verb} goes through the leader's log")
            return 1
        got = admin_request(link, leader, action, timeout=args.timeout)
        if got and got[0].code == AdminCode.NOT_LEADER and got[0].leader in topo.members:
            leader = got[0].leader
            got = admin_request(link, leader, action, timeout=args.timeout)
    if not got:
        print(f"error: member={leader} did not confirm {args.verb} within {args.timeout}s (it may still apply it: check describe)")
        return 1
    problem = _refused(leader, args.verb, got[0])
    if problem or got[0].code != AdminCode.OK:
        print(problem or f"error: member={leader} is not the leader any more: try again")
        return 1
    d = _detail(got[0])
    state = "suspended: client messages are refused (detail=suspended) until resume" if d.get("suspended") else "resumed: client messages are applied"
    print(f"{state}; applied at log position {d.get('position')} (leader {leader})")
    return 0


def _cmd_shutdown(args: argparse.Namespace) -> int:
    from .aeron_io import ClusterLink
    from .admin import admin_request
    from .wire import AdminCode, ClusterAction
    loaded = _load_or_say(args)
    if loaded is None:
        return 2
    topo, credentials = loaded
    with ClusterLink(topo.members, aeron_base=topo.aeron_dir, credentials=credentials) as link:
        # describe each member first: who runs, and every member learns where to answer the tool
        running = []
        for m in sorted(topo.members):
            if admin_request(link, m, ClusterAction.DESCRIBE, timeout=1.0):
                running.append(m)
            else:
                print(f"member {m}: not running (no answer)")
        leader = _find_leader(link, topo)
        if leader is None:
            print("error: no leader answered: a shutdown goes through the leader's log")
            return 1
        stopped: dict[int, dict[str, Any]] = {}
        appended: dict[str, Any] = {}

        def until(got: list[Any]) -> bool:
            for r in got:
                d = _detail(r)
                if d.get("stopped"):
                    stopped[r.member] = d
                elif "appended" in d:
                    appended.update(d)
            return bool(got and got[0].code != AdminCode.OK) or all(m in stopped for m in running)

        got = admin_request(link, leader, ClusterAction.SHUTDOWN, timeout=args.timeout, until=until)
    if got and got[0].code != AdminCode.OK:
        print(_refused(leader, "shutdown", got[0]) or f"error: member={leader} is not the leader any more: try again")
        return 1
    if appended:
        print(f"shutdown appended by leader {leader}: log entry {appended.get('appended')}..{appended.get('position')} "
              f"(term {appended.get('term')}); each member snapshots once it has applied it")
    rc = 0
    for m in running:
        d = stopped.get(m)
        if d is None:
            print(f"member {m}: no word of its shutdown within {args.timeout}s")
            rc = 1
        else:
            print(f"member {m}: snapshot at position {d['snapshot']}, stopped")
    return rc


def _member_dir(args: argparse.Namespace) -> tuple[int | None, str] | None:
    from .errors import ClusterError
    if args.data_dir:
        return args.member, args.data_dir
    try:
        topo, _ = _load(args)
    except (ClusterError, OSError) as exc:
        print(f"error: {exc}")
        return None
    if args.member is None or args.member not in topo.members:
        print(f"error: which member: --member N (one of {','.join(map(str, sorted(topo.members)))}), or --data-dir DIR: fault=user")
        return None
    return args.member, os.path.join(topo.data_dir, f"member-{args.member}")


def _cmd_recovery_plan(args: argparse.Namespace) -> int:
    from .errors import ClusterError
    from .logtool import format_plan, recovery_plan
    where = _member_dir(args)
    if where is None:
        return 2
    member, directory = where
    try:
        plan = recovery_plan(directory)
    except (ClusterError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    if args.json:
        print(json.dumps(plan, indent=2, sort_keys=True))
    else:
        print("\n".join(format_plan(member, plan)))
    return 1 if plan.get("refuses") else 0


def _live_commit(args: argparse.Namespace, member: int | None) -> int | None:
    """The member's commit position if it is running and answers (best effort)."""
    if member is None or not args.config:
        return None
    try:
        from .aeron_io import ClusterLink, query_status
        topo, _ = _load(args)
        with ClusterLink(topo.members, aeron_base=topo.aeron_dir) as link:
            st = query_status(link, member, timeout=0.5)
    except Exception:  # no driver, not running: the saved positions are what there is
        return None
    return None if st is None else st.commit_position


def _cmd_log_dump(args: argparse.Namespace) -> int:
    from .errors import ClusterError
    from .log import MetaStore, SnapshotStore
    from .logtool import LogDumpError, ReadOnlyDisk, describe_entry, format_entry, load_service_schemas, read_entries
    where = _member_dir(args)
    if where is None:
        return 2
    member, directory = where
    try:
        schemas = load_service_schemas(args.schema or [])
        disk = ReadOnlyDisk(directory)
        snap, _ = SnapshotStore(disk).load_latest()
    except (ClusterError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    try:
        saved = MetaStore(disk).load().commit_position
    except ClusterError as exc:  # the entries may still be readable: dump them, none known committed
        print(f"# the saved commit position is unreadable: {exc}")
        saved = 0
    live = None if args.offline else _live_commit(args, member)
    commit = live if live is not None else max(saved, snap.position if snap else 0)
    source = "the running member" if live is not None else "saved positions (a lower bound: the member saves its commit position lazily)"
    print(f"# log of {'member ' + str(member) if member is not None else directory}: commit position {commit} from {source}")
    shown = total = 0
    try:
        for e in read_entries(directory):
            total += 1
            committed = e.end <= commit
            if args.committed and not committed:
                continue
            d = describe_entry(e, schemas, committed)
            print(json.dumps(d, sort_keys=False) if args.json else format_entry(d))
            shown += 1
    except LogDumpError as exc:
        print(f"# {shown} entries shown before the damage")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"# {shown} of {total} entries shown")
    return 0


def _field_value(text: str) -> Any:
    """A key=value value: JSON when it reads as JSON (numbers, null, true, quoted text, objects), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fill_missing(schema: Any, message: str, fields: dict[str, Any]) -> None:
    """Fields left out: optional ones are null, composites ``{}`` (their members then null or named as missing)."""
    from tickline.codecs.ir import CompositeType
    msg = schema.message_by_name(message)
    for f in msg.fields:
        if f.name in fields:
            continue
        if isinstance(f.type, CompositeType):
            fields[f.name] = {}
        elif f.presence == "optional" or getattr(f.type, "presence", None) == "optional":
            fields[f.name] = None
    for d in msg.data:
        fields.setdefault(d.name, "")


def submit_payload(schemas: list[Any], message: str | None, values: list[str]) -> bytes:
    """The service message that ``tickline cluster submit`` sends: ``values`` is one JSON
    object (the fields, or a whole document with "message") or ``key=value`` pairs
    (``a.b=1`` for a composite's member), encoded through the schema that has the message."""
    from tickline.codecs import MessageError, otf
    from .errors import ConfigError
    doc: dict[str, Any]
    if len(values) == 1 and values[0].lstrip().startswith("{"):
        parsed = otf.from_json(values[0])
        if not isinstance(parsed, dict):
            raise ConfigError("the JSON argument must be an object")
        doc = parsed if "message" in parsed else {"message": message, "fields": parsed}
    else:
        fields: dict[str, Any] = {}
        for v in values:
            key, sep, text = v.partition("=")
            if not sep or not key:
                raise ConfigError("not key=value", argument=v)
            *path, last = key.split(".")
            at = fields
            for p in path:
                at = at.setdefault(p, {})
                if not isinstance(at, dict):
                    raise ConfigError("a key names a member of something that is not a composite", key=key)
            at[last] = _field_value(text)
        doc = {"message": message, "fields": fields}
    name = doc.get("message")
    if not name:
        raise ConfigError("which message: give its name (MESSAGE) or a JSON document with \"message\"")
    for schema in schemas:
        try:
            schema.message_by_name(name)
        except KeyError:
            continue
        if isinstance(doc.get("fields"), dict):
            _fill_missing(schema, name, doc["fields"])
        try:
            return otf.encode(schema, doc)
        except MessageError as exc:
            raise ConfigError("the message does not encode", message=name, schema=schema.file, reason=exc) from None
    raise ConfigError("no --schema has this message", message=name, schemas=",".join(s.file for s in schemas) or "none")


def _cmd_submit(args: argparse.Namespace) -> int:
    import time
    from tickline.codecs import MessageError
    from .aeron_io import AeronClusterClient
    from .errors import ClusterError, ConfigError
    from .logtool import decode_payload, load_service_schemas
    from .protocol import SessionClose
    try:
        topo, credentials = _load(args)
        schemas = load_service_schemas(args.schema or [])
        if args.message is not None and args.message.lstrip().startswith("{"):
            args.values, args.message = [args.message, *args.values], None
        if args.hex is not None:
            if args.values or args.message:
                raise ConfigError("--hex is the whole message: no MESSAGE or fields with it")
            payload = bytes.fromhex(args.hex)
        else:
            if not schemas:
                raise ConfigError("the service's messages are encoded through its SBE schema: give --schema XML (or --hex)")
            payload = submit_payload(schemas, args.message, args.values)
    except (ClusterError, OSError, MessageError) as exc:
        print(f"error: {exc}")
        return 2
    except ValueError as exc:
        print(f"error: --hex is not hex: {exc}: fault=user")
        return 2
    client = AeronClusterClient(topo.members, aeron_base=topo.aeron_dir, credentials=credentials)
    try:
        corr = client.offer(payload)
        deadline = time.monotonic() + args.timeout
        told = None
        while time.monotonic() < deadline:
            for c, answer in client.poll():
                if c == corr:
                    d = decode_payload(answer, schemas)
                    print(json.dumps({"correlation": c, "leader": client.client.leader_guess, **d}, indent=2))
                    leader = client.client.leader_guess
                    client.link.send(leader, SessionClose(client.link.client_id, client.client.session_id), client.link.now())
                    client.poll()
                    return 0
            if client.rejected is not None:
                print(f"error: the cluster refused the credentials: {client.rejected} (--credentials FILE of a client principal) fault=user")
                return 1
            refusal = client.client.last_refusal
            if refusal is not None and refusal != told:
                told = refusal
                print(f"the cluster answered {refusal}: the message is kept and retried until answered or --timeout", file=sys.stderr)
            time.sleep(0.001)
        state = "not connected" if not client.client.connected else f"last answer: {told}" if told else "no answer"
        print(f"error: no answer within {args.timeout}s ({state})")
        return 1
    finally:
        client.close()


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .auth import generate_member_key
    try:
        generate_member_key(args.file)
    except FileExistsError:
        print(f"error: key file exists, not overwritten: file={args.file} fault=user")
        return 2
    print(f"wrote a new cluster key (0600): {args.file}")
    return 0


def _cmd_credentials(args: argparse.Namespace) -> int:
    from .auth import credentials_line
    if not args.principal or any(c in args.principal for c in ": \t#"):
        print(f"error: principal must be non-empty without ':', spaces or '#': principal={args.principal!r} fault=user")
        return 2
    secret = secrets.token_urlsafe(24)  # 192 bits
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"error: output file exists, not overwritten: file={args.out} fault=user")
        return 2
    with os.fdopen(fd, "w") as f:
        f.write(f"{args.principal}:{secret}\n")
    fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(credentials_line(args.principal, args.roles, secret) + "\n")
    print(f"added principal={args.principal} roles={args.roles} to {args.file}; its credentials (0600): {args.out}")
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from . import sim
    argv = ["--start", str(args.start), "--seeds", str(args.seeds), "--codec", args.codec]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    if args.members is not None:
        argv += ["--members", str(args.members)]
    if args.sync_delay is not None:
        argv += ["--sync-delay", str(args.sync_delay)]
    if args.actions:
        argv.append("--actions")
    return sim.main(argv)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("cluster", help="replicated sequencer: run a member, inspect members, simulate")
    sub = p.add_subparsers(dest="cluster_command", metavar="CMD")
    p.set_defaults(func=lambda _a: p.print_help() or 2)
    n = sub.add_parser("node", help="run one cluster member")
    n.add_argument("--config", required=True, help="topology TOML file (its [members] table, data_dir, security settings)")
    n.add_argument("--member", type=int, required=True, help="which member of the topology's [members] this process runs (its id)")
    add_log_arguments(n)
    n.set_defaults(func=_cmd_node)
    _register_tool(sub)
    sb = sub.add_parser("submit", help="send one message to the cluster's service and print the answer (for trying a service by hand)",
                        description="Encode a message through the service's SBE schema (key=value pairs, a.b=1 for a composite's "
                                    "member, or one JSON object), send it on a new client session and print the answer, decoded "
                                    "through the schemas when one has it.  Example: tickline cluster submit --config cluster.toml "
                                    "--schema schemas/orders.xml --schema schemas/sequencer.xml NewOrder clOrdId=c1 account=A1 "
                                    "symbol=XYZ side=Buy ordType=Limit timeInForce=Day price.mantissa=100 quantity=5 transactTime=0")
    sb.add_argument("--config", required=True, help="the cluster's topology TOML file")
    sb.add_argument("--credentials", metavar="FILE",
                    help="file holding principal:secret of a client principal (else $TICKLINE_CLUSTER_CREDENTIALS_FILE)")
    sb.add_argument("--schema", action="append", metavar="XML",
                    help="an SBE schema of the service's messages (repeat: the one that has MESSAGE encodes it; all decode the answer)")
    sb.add_argument("--hex", metavar="HEX", help="send these bytes as they are instead (a service without a schema)")
    sb.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the answer")
    sb.add_argument("message", nargs="?", help="the message's name in the schema (or give a JSON document with \"message\")")
    sb.add_argument("values", nargs="*", help="the fields: key=value ... (values read as JSON when they are), or one JSON object")
    sb.set_defaults(func=_cmd_submit)
    k = sub.add_parser("keygen", help="write a new cluster key (member_key_file)")
    k.add_argument("file", help="where to write the key (a new file, mode 0600; refused if it exists)")
    k.set_defaults(func=_cmd_keygen)
    c = sub.add_parser("credentials", help="add a principal to a credentials file")
    c.add_argument("--file", required=True, help="the credentials file (credentials_file), created 0600 if missing")
    c.add_argument("--principal", required=True, help="the name the client or operator connects as (no ':', spaces or '#')")
    c.add_argument("--roles", default="client", help="comma-separated: client, admin")
    c.add_argument("--out", required=True, help="where to write principal:secret for the client (0600, new file)")
    c.set_defaults(func=_cmd_credentials)
    s = sub.add_parser("sim", help="run the deterministic simulator over seeds")
    s.add_argument("--seed", type=int, help="run this one seed and print its stats (instead of --seeds)")
    s.add_argument("--seeds", type=int, default=1000, help="how many seeds to run: START .. START+N-1")
    s.add_argument("--start", type=int, default=0, help="the first seed of --seeds")
    s.add_argument("--codec", choices=["struct", "sbe"], default="struct",
                   help="the wire format of the simulated sequencer's orders (struct, or SBE messages of schemas/orders.xml)")
    s.add_argument("--members", type=int, choices=[3, 5], help="cluster size (default: chosen by each seed, 3 or 5)")
    s.add_argument("--sync-delay", type=int, metavar="MS",
                   help="the longest a background log sync takes, ms (0: syncs block; default: chosen by each seed)")
    s.add_argument("--actions", action="store_true",
                   help="operators suspend and resume the cluster through the log under the faults; refused orders must apply once")
    s.set_defaults(func=_cmd_sim)


def _common(p: argparse.ArgumentParser, *, suppress: bool, member_help: str | None, credentials: bool = True,
            timeout: float | None = None) -> None:
    """The tool's options, on the tool parser and (defaults suppressed, so a value given
    before the verb survives) on each verb's parser."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--config", default=d(None), help="the cluster's topology TOML file")
    if member_help is not None:
        p.add_argument("--member", type=int, default=d(None), help=member_help)
    if credentials:
        p.add_argument("--credentials", default=d(None), metavar="FILE",
                       help="file holding principal:secret of a principal with the admin role (else $TICKLINE_CLUSTER_CREDENTIALS_FILE)")
    if timeout is not None:
        p.add_argument("--timeout", type=float, default=timeout, metavar="SECONDS", help="how long to wait for the answers")


def _register_tool(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("tool", help="operate a running cluster (ClusterTool): status, describe, errors, snapshot, step-down, "
                                    "suspend, resume, shutdown; offline: recovery-plan, log dump")
    _common(t, suppress=False, member_help="the member to act on (snapshot, recovery-plan, log dump; errors and describe: only this one)",
            timeout=None)
    t.set_defaults(func=_cmd_tool, action="status", json=False)
    verbs = t.add_subparsers(dest="verb", metavar="VERB")
    admin = "needs an admin credential"
    for name, what, func, member_help, timeout in [
        ("status", "members, roles, terms, log/commit/applied/snapshot positions (open to anyone)", _cmd_tool, None, None),
        ("snapshot", f"take a snapshot on one member ({admin})", _cmd_tool, "the member that takes the snapshot (required)", None),
        ("step-down", f"the leader hands leadership to the most up-to-date follower ({admin})", _cmd_tool, None, None),
        ("describe", "each member in full: role, term, positions, snapshots, followers' match positions (open to anyone)",
         _cmd_describe, "describe only this member", 2.0),
        ("errors", f"each member's recent error lines, newest last ({admin})", _cmd_errors, "only this member's errors", 2.0),
        ("suspend", f"stop applying client messages, through the log; consensus and heartbeats go on ({admin})",
         _cmd_log_action, None, 5.0),
        ("resume", f"apply client messages again, through the log ({admin})", _cmd_log_action, None, 5.0),
        ("shutdown", f"every member takes a snapshot at the same log position, then stops with exit status 0 ({admin})",
         _cmd_shutdown, None, 20.0),
    ]:
        v = verbs.add_parser(name, help=what, description=what)
        _common(v, suppress=True, member_help=member_help, timeout=timeout)
        if name in ("describe",):
            v.add_argument("--json", action="store_true", help="print the members' answers as JSON")
        v.set_defaults(func=func, action=name if func is _cmd_tool else "status", verb=name)
    offline = "reads the member's data directory, no process needed"
    r = verbs.add_parser("recovery-plan", help=f"what a member will load and replay when it starts ({offline})")
    _common(r, suppress=True, member_help="the member whose data directory is read (with --config)", credentials=False)
    r.add_argument("--data-dir", metavar="DIR", help="the member's own data directory (instead of --config and --member)")
    r.add_argument("--json", action="store_true", help="print the plan as JSON")
    r.set_defaults(func=_cmd_recovery_plan, verb="recovery-plan")
    lg = verbs.add_parser("log", help=f"a member's replicated log ({offline})")
    lg_sub = lg.add_subparsers(dest="log_verb", metavar="WHAT", required=True)
    dump = lg_sub.add_parser("dump", help="print the log's entries, decoded through schemas/cluster.xml and the service's schemas")
    _common(dump, suppress=True, member_help="the member whose log is read (with --config)", credentials=False)
    dump.add_argument("--data-dir", metavar="DIR", help="the member's own data directory (instead of --config and --member)")
    dump.add_argument("--schema", action="append", metavar="XML",
                      help="an SBE schema of the service's messages (repeat for several); without one, payloads print in hex")
    dump.add_argument("--committed", action="store_true", help="only entries known to be committed")
    dump.add_argument("--offline", action="store_true",
                      help="do not ask the running member for its commit position (use the saved one, a lower bound)")
    dump.add_argument("--json", action="store_true", help="one JSON object per entry")
    dump.set_defaults(func=_cmd_log_dump, verb="log")


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .bench import register_bench as _register
    _register(bench_subparsers)
