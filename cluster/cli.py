"""``tickline cluster ...`` commands.

- ``tickline cluster node --config FILE --member N``: run a member (see :mod:`.daemon`);
- ``tickline cluster tool --config FILE status|snapshot N|step-down``: members, roles,
  terms, log and commit positions; take a snapshot; step the leader down (these two
  need an admin credential: ``--credentials FILE`` or ``TICKLINE_CLUSTER_CREDENTIALS_FILE``,
  a 0600 file holding ``principal:secret``);
- ``tickline cluster keygen FILE``: a new cluster key (0600) for ``member_key_file``;
- ``tickline cluster credentials --file F --principal P [--roles client,admin] --out C``:
  a new secret for P, its hash appended to the credentials file F, and ``P:secret``
  written to C (0600) for the client or operator;
- ``tickline cluster sim [--seed N | --seeds N --start S]``: the deterministic simulator.
"""

from __future__ import annotations

import argparse
import os
import secrets

from tickline.logs import add_arguments as add_log_arguments


def _cmd_node(args: argparse.Namespace) -> int:
    from tickline.logs import argv_of

    from . import daemon
    return daemon.main(["--config", args.config, "--member", str(args.member), *argv_of(args)])


def _cmd_tool(args: argparse.Namespace) -> int:
    from .aeron_io import ClusterLink, query_status
    from .daemon import load_topology
    from .errors import ClusterError
    try:
        topo = load_topology(args.config)
    except ClusterError as exc:
        print(f"error: {exc}")
        return 2
    action = {"status": 0, "snapshot": 1, "step-down": 2}[args.action]
    credentials = b""
    cred_file = args.credentials or os.environ.get("TICKLINE_CLUSTER_CREDENTIALS_FILE")
    if cred_file:
        from .auth import read_credentials
        try:
            credentials = read_credentials(cred_file, "credentials")
        except (ClusterError, OSError) as exc:
            print(f"error: {exc}")
            return 2
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
    return sim.main(argv)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("cluster", help="replicated sequencer: run a member, inspect members, simulate")
    sub = p.add_subparsers(dest="cluster_command", metavar="CMD")
    p.set_defaults(func=lambda _a: p.print_help() or 2)
    n = sub.add_parser("node", help="run one cluster member")
    n.add_argument("--config", required=True, help="topology TOML file")
    n.add_argument("--member", type=int, required=True)
    add_log_arguments(n)
    n.set_defaults(func=_cmd_node)
    t = sub.add_parser("tool", help="show members; take a snapshot; step the leader down")
    t.add_argument("--config", required=True)
    t.add_argument("action", choices=["status", "snapshot", "step-down"], nargs="?", default="status")
    t.add_argument("--member", type=int)
    t.add_argument("--credentials", help="file holding principal:secret (admin role for snapshot, step-down)")
    t.set_defaults(func=_cmd_tool)
    k = sub.add_parser("keygen", help="write a new cluster key (member_key_file)")
    k.add_argument("file")
    k.set_defaults(func=_cmd_keygen)
    c = sub.add_parser("credentials", help="add a principal to a credentials file")
    c.add_argument("--file", required=True, help="the credentials file (credentials_file), created 0600 if missing")
    c.add_argument("--principal", required=True)
    c.add_argument("--roles", default="client", help="comma-separated: client, admin")
    c.add_argument("--out", required=True, help="where to write principal:secret for the client (0600, new file)")
    c.set_defaults(func=_cmd_credentials)
    s = sub.add_parser("sim", help="run the deterministic simulator over seeds")
    s.add_argument("--seed", type=int)
    s.add_argument("--seeds", type=int, default=1000)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--codec", choices=["struct", "sbe"], default="struct")
    s.set_defaults(func=_cmd_sim)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .bench import register_bench as _register
    _register(bench_subparsers)
