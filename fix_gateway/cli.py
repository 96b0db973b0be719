"""FIX gateway commands: ``tickline fix-gateway`` and ``tickline bench fix``.

``tickline fix-gateway --config FILE`` runs the daemon in the foreground;
SIGTERM/SIGINT log every session out, then it exits 0.
``tickline fix-gateway --config FILE --status`` prints the sessions, their
state and sequence numbers from the running daemon's status file.
``tickline fix-gateway --hash-password`` reads a password from stdin and prints its salted
hash, for ``password_hash`` or a ``credentials_file`` line (the password is never stored).
(``tickline exchange-sim``, the simulated venue, is the application package
``tickline.venue``'s.)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading


def _cmd_gateway(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .gateway import Gateway, load_config

    if args.hash_password:
        from .auth import hash_password

        pw = sys.stdin.readline().rstrip("\n")
        if not pw:
            print("tickline fix-gateway: empty password on stdin: fault=user", file=sys.stderr)
            return 2
        print(hash_password(pw))
        return 0
    if not args.config:
        print("tickline fix-gateway: --config FILE is needed", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"tickline fix-gateway: {e}", file=sys.stderr)
        return 2
    if args.status:
        if not cfg.status_path:
            print(f"tickline fix-gateway: status_file is off: fault=config path={args.config}", file=sys.stderr)
            return 2
        try:
            with open(cfg.status_path) as f:
                st = json.load(f)
        except (OSError, ValueError) as e:
            print(f"tickline fix-gateway: no status (is the gateway running?): path={cfg.status_path} error={e}",
                  file=sys.stderr)
            return 1
        print(f"{'session':<40} {'role':<10} {'state':<16} {'next_out':>9} {'next_in':>9}")
        for s in st["sessions"]:
            print(f"{s['session']:<40} {s['role']:<10} {s['state']:<16} {s['next_sender_seq']:>9} {s['next_target_seq']:>9}")
        for part in ("bridge", "acceptor"):  # acceptor: open connections, refusals by reason
            if part in st:
                print(part + " " + " ".join(f"{k}={v}" for k, v in st[part].items()))
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from tickline.transport import AeronError

    # logons, logouts, refused logons (rate-limited), resets, resends, rejects and errors: one line each
    from tickline.logs import LogConfigError, configure_from_args
    from tickline.logs import quote as _quote

    try:
        configure_from_args(args)
    except LogConfigError as e:
        print(f"tickline fix-gateway: {e}", file=sys.stderr)
        return 2
    log = logging.getLogger("tickline.fix_gateway")
    try:
        gw = Gateway(cfg)
    except (ConfigError, OSError, AeronError) as e:
        print(f"tickline fix-gateway: {e}", file=sys.stderr)
        return 2
    try:
        gw.on_start()
    except OSError as e:
        print(f"tickline fix-gateway: {e}", file=sys.stderr)
        return 1
    port = gw.acceptor.port if gw.acceptor else None
    # the ready line (scripts wait for it), then the log
    print(f"tickline fix-gateway: running sessions={len(cfg.sessions)} acceptor_port={port} bridge={cfg.bridge_kind}",
          file=sys.stderr, flush=True)
    log.info("started sessions=%d acceptor_port=%s bridge=%s store_dir=%s status_file=%s", len(cfg.sessions), port,
             cfg.bridge_kind, _quote(cfg.store_dir), _quote(cfg.status_path or "off"))
    gw.run(stop)
    log.info("stopped")
    print("tickline fix-gateway: stopped", file=sys.stderr, flush=True)
    return 0


def _cmd_admin(args: argparse.Namespace) -> int:
    import os

    from .admin import AdminError, request
    from .auth import read_private_file
    from .config import ConfigError
    from .gateway import admin_socket_path, load_config

    if not args.config:
        print("tickline fix-gateway admin: --config FILE is needed", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        if args.password_file:
            password = read_private_file(args.password_file, "--password-file").rstrip("\n")
        else:
            password = os.environ.get("TICKLINE_FIX_ADMIN_PASSWORD", "")
        if not password:
            raise ConfigError("no admin password: fault=user (--password-file FILE, or TICKLINE_FIX_ADMIN_PASSWORD)")
    except ConfigError as e:
        print(f"tickline fix-gateway admin: {e}", file=sys.stderr)
        return 2
    fields: dict[str, object] = {}
    if args.admin_command != "list":
        fields["session"] = args.session
    if args.admin_command == "disconnect" and args.reason:
        fields["reason"] = args.reason
    if args.admin_command == "set-next-seq":
        fields.update({k: v for k, v in (("sender", args.sender), ("target", args.target)) if v is not None})
    try:
        answer = request(admin_socket_path(cfg), password, args.admin_command, **fields)
    except AdminError as e:
        print(f"tickline fix-gateway admin: {e}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"tickline fix-gateway admin: {answer.get('error')}", file=sys.stderr)
        return 1
    if args.admin_command == "list":
        print(f"{'session':<40} {'role':<10} {'state':<16} {'next_out':>9} {'next_in':>9}  peer")
        for r in answer["sessions"]:
            print(f"{r['session']:<40} {r['role']:<10} {r['state']:<16} {r['next_sender_seq']:>9} "
                  f"{r['next_target_seq']:>9}  {r['peer'] or '-'}")
    else:
        print("ok " + " ".join(f"{k}={v}" for k, v in answer.items() if k != "ok"))
    return 0


def _cmd_fix_store(args: argparse.Namespace) -> int:
    from .store import dump

    try:
        for line in dump(args.file):
            print(line)
    except OSError as e:
        print(f"tickline fix-store: cannot read: fault=user path={args.file} error={e.strerror or e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from tickline import benchkit

    from .bench import run_fix_bench

    return benchkit.run_guarded("tickline bench fix", lambda a: run_fix_bench(a.count, a.warmup, a.idle, a.aeron,
                                                                                a.runs, a), args)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tickline.logs import add_arguments as add_log_arguments

    p = subparsers.add_parser("fix-gateway", help="run the FIX session gateway (or print its status)")
    p.add_argument("--config", help="topology file (TOML) with a [fix_gateway] section")
    p.add_argument("--status", action="store_true", help="print sessions, state and sequence numbers, then exit")
    p.add_argument("--hash-password", action="store_true",
                   help="read a password from stdin, print its salted hash (for password_hash / credentials_file)")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_gateway)
    sub = p.add_subparsers(dest="fix_gateway_command", metavar="ACTION")
    a = sub.add_parser("admin", help="talk to the running gateway over <store_dir>/admin.sock (admin_password_hash)")
    a.add_argument("--config", default=argparse.SUPPRESS, help="topology file of the running gateway")
    a.add_argument("--password-file", help="a file (mode 0600) holding the admin password "
                                           "(default: $TICKLINE_FIX_ADMIN_PASSWORD)")
    asub = a.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    asub.add_parser("list", help="the sessions: state, sequence numbers, peer")
    d = asub.add_parser("disconnect", help="log a session out (or drop its connection if not logged on)")
    d.add_argument("session", help="session id as `list` prints it, e.g. FIX.4.4:GW->C1")
    d.add_argument("--reason", help="Text(58) of the Logout (default: Disconnected by the operator)")
    r = asub.add_parser("reset-seq", help="both sequence numbers back to 1, stored messages gone (logged-out session)")
    r.add_argument("session", help="session id")
    n = asub.add_parser("set-next-seq", help="set the next sequence number sent and/or expected (logged-out session)")
    n.add_argument("session", help="session id")
    n.add_argument("--sender", type=int, help="next MsgSeqNum the gateway sends")
    n.add_argument("--target", type=int, help="next MsgSeqNum the gateway expects")
    a.set_defaults(func=_cmd_admin)
    p = subparsers.add_parser("fix-store", help="inspect a FIX message store")
    sub = p.add_subparsers(dest="fix_store_command", metavar="ACTION", required=True)
    d = sub.add_parser("dump", help="print a session's store file record by record (read-only; SOH shown as |)")
    d.add_argument("file", help="a store file (<store_dir>/<session>.log)")
    d.set_defaults(func=_cmd_fix_store)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("fix", help="NewOrderSingle -> ExecutionReport round trips: tickline gateway vs QuickFIX")
    p.add_argument("--count", type=int, default=20_000, help="round trips per target")
    p.add_argument("--warmup", type=int, default=2_000, help="round trips before measuring")
    p.add_argument("--idle", default="busy-spin", help="idle strategy of the tickline gateway agent")
    p.add_argument("--runs", type=int, default=1, help="repeat the whole set; print the median of each figure")
    p.add_argument("--aeron", action="store_true",
                   help="also measure gateway -> Aeron IPC -> tickline exchange-sim process -> gateway")
    from tickline import benchkit

    benchkit.add_output_args(p)
    p.set_defaults(func=_cmd_bench)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m tickline.fix_gateway.cli``), same commands as under ``tickline``."""
    from tickline import cli

    return cli.main(argv, modules=["tickline.fix_gateway.cli"])


if __name__ == "__main__":
    sys.exit(main())
