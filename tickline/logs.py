"""The daemons' logs: one line per event, ``logging`` underneath.

A line reads ``2026-12-06T02:07:01.123456Z INFO tickline.fix_gateway logon session=... peer=...``:
UTC timestamp (microseconds), level, component (the logger's name), then the
event and its ``key=value`` fields (:func:`kv` quotes values with spaces).

:func:`configure` sets the level (argument, else ``TICKLINE_LOG_LEVEL``, else
INFO) and the destination: stderr, or a file rotated by size
(``--log-file``, ``--log-max-bytes``, ``--log-backups``); :func:`add_arguments`
adds those options to a daemon's parser.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import re
import sys
import time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_BACKUPS = 5
_HANDLER_MARK = "_tickline_handler"


class LogConfigError(ValueError):
    pass


class UtcFormatter(logging.Formatter):
    """``<UTC ISO-8601 with microseconds>Z LEVEL component message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return utc_stamp(record.created)


#: a line that starts with the common timestamp (``tickline up`` does not stamp such a line again)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z(?= )")


def utc_stamp(t: float) -> str:
    """``t`` (seconds since the epoch) as the logs' timestamp: ``2026-12-06T02:07:01.123456Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


_UNSAFE = re.compile(r'[\x00-\x20"=\\\x7f]')
_ESCAPE = re.compile(r'[\x00-\x1f"\\\x7f]')
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def quote(value: object) -> str:
    """A log field's value: as it is, or in double quotes when it is empty or has a space,
    quote, ``=``, backslash or control character in it (escaped: ``\\n``, ``\\x1b``), so a
    peer's text can't forge another field or line, nor reach a terminal raw."""
    s = str(value)
    if s and not _UNSAFE.search(s):
        return s
    return '"' + _ESCAPE.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), s) + '"'


def kv(**fields: object) -> str:
    """``key=value`` pairs, values through :func:`quote`."""
    return " ".join(f"{k}={quote(v)}" for k, v in fields.items())


def resolve_level(level: str | None, env: dict[str, str] | None = None) -> int:
    env = os.environ if env is None else env  # type: ignore[assignment]
    name = level or env.get("TICKLINE_LOG_LEVEL") or "INFO"  # type: ignore[union-attr]
    where = "--log-level" if level else "TICKLINE_LOG_LEVEL"
    if name.upper() not in LEVELS:
        raise LogConfigError(f"bad log level: fault=user key={where} value={name!r} allowed={'|'.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def configure(level: str | None = None, file: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
              backups: int = DEFAULT_BACKUPS, logger: str = "tickline") -> logging.Handler:
    """Route ``logger`` (and its children) to stderr or a size-rotated file; returns the handler.

    Calling it again replaces the handler it installed before."""
    lvl = resolve_level(level)
    if max_bytes < 0 or backups < 0:
        raise LogConfigError(f"bad log rotation: fault=user max_bytes={max_bytes} backups={backups}")
    handler: logging.Handler
    if file:
        try:
            handler = logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups)
        except OSError as e:
            raise LogConfigError(f"cannot open log file: fault=user key=--log-file path={file} error={e}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UtcFormatter())
    setattr(handler, _HANDLER_MARK, True)
    log = logging.getLogger(logger)
    for h in list(log.handlers):
        if getattr(h, _HANDLER_MARK, False):
            log.removeHandler(h)
            h.close()
    log.addHandler(handler)
    log.setLevel(lvl)
    log.propagate = False
    return handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=LEVELS, type=str.upper,
                        help="least severe level logged (default: $TICKLINE_LOG_LEVEL, else INFO)")
    parser.add_argument("--log-file", metavar="PATH", help="log to this file, rotated by size (default: stderr)")
    parser.add_argument("--log-max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                        help="rotate the log file at this size")
    parser.add_argument("--log-backups", type=int, default=DEFAULT_BACKUPS, metavar="N",
                        help="rotated log files kept (PATH.1 ... PATH.N)")


def configure_from_args(args: argparse.Namespace, logger: str = "tickline") -> logging.Handler:
    return configure(args.log_level, args.log_file, args.log_max_bytes, args.log_backups, logger)


def argv_of(args: argparse.Namespace) -> list[str]:
    """The options :func:`add_arguments` parsed, as a command line again (for a command that runs another's main)."""
    out = ["--log-max-bytes", str(args.log_max_bytes), "--log-backups", str(args.log_backups)]
    if args.log_level:
        out += ["--log-level", args.log_level]
    if args.log_file:
        out += ["--log-file", args.log_file]
    return out


def start_daemon(args: argparse.Namespace, prog: str) -> bool:
    """A daemon's first step: :func:`configure_from_args`; a bad option (level, unwritable file)
    is printed as ``prog: error`` on stderr and False returned (the daemon exits 2)."""
    try:
        configure_from_args(args)
    except LogConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return False
    return True
