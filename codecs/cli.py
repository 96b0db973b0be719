"""``tickline codegen``, ``tickline sbe-decode``, ``tickline sbe-encode`` and ``tickline bench codecs``.

Exit codes: 0 success, 1 bad input (schema, message or JSON; the message on
stderr says which and where), 2 usage errors (argparse); ``sbe-compat`` exits 3
when the schemas are incompatible in the direction(s) asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from tickline.codecs.errors import MessageError, SchemaError
from tickline.codecs.schema import load_schema


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("codegen", help="generate codecs from an SBE XML schema")
    p.add_argument("schema", help="SBE XML schema file")
    p.add_argument("--lang", choices=["python", "cython"], default="python",
                   help="target language (default: python); cython writes <module>.pyx, compiled codecs of the same API")
    p.add_argument("-o", "--output", required=True, help="directory to write the module into")
    p.add_argument("--module", help="module name (default: the schema's package, made a valid identifier)")
    p.add_argument("--strict", action="store_true", help="treat schema warnings as errors")
    p.add_argument("--build", action="store_true",
                   help="with --lang cython: also compile the module in the output directory (needs Cython and a C compiler)")
    p.set_defaults(func=cmd_codegen)

    p = subparsers.add_parser("sbe-decode", help="decode SBE message(s) to JSON using only the schema")
    p.add_argument("schema", help="SBE XML schema file")
    p.add_argument("file", help="binary file with a message (header included); '-' for stdin")
    p.add_argument("--offset", type=int, default=0, help="byte offset of the first message")
    p.add_argument("--all", action="store_true",
                   help="decode back-to-back messages into a JSON list (each must end where the schema says it ends)")
    p.add_argument("--strict-enums", action="store_true",
                   help="an enum value the schema does not know is an error (default: printed as its raw value)")
    p.set_defaults(func=cmd_decode)

    p = subparsers.add_parser("sbe-encode", help="encode JSON (sbe-decode's form) to SBE bytes on stdout")
    p.add_argument("schema", help="SBE XML schema file")
    p.add_argument("file", help="JSON file: one message object, or a list of them; '-' for stdin (a header left out, whole or in part, is filled in as an encoder of its version writes it)")
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.set_defaults(func=cmd_encode)

    p = subparsers.add_parser("sbe-compat", help="can messages of one schema version be read with the other's codecs?")
    p.add_argument("old", help="the OLD SBE XML schema (what deployed readers and writers were generated from)")
    p.add_argument("new", help="the NEW SBE XML schema")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--direction", choices=["both", "new-by-old", "old-by-new"], default="both",
                   help="which direction must hold for exit status 0 (default: both)")
    p.set_defaults(func=cmd_compat)


def register_bench(bench_subparsers: Any) -> None:
    p = bench_subparsers.add_parser("codecs", help="SBE codecs vs protobuf (upb), msgpack, json and struct")
    p.add_argument("--iterations", type=int, default=20000, help="messages per measurement")
    p.add_argument("--runs", type=int, default=5, help="measurements per case; the median is printed")
    from tickline import benchkit

    benchkit.add_output_args(p, json_help="write the results in the common JSON schema ('-': to stdout)")
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench codecs", cmd_bench, a))


def _err(text: str) -> int:
    print(text, file=sys.stderr)
    return 1


def _module_name(args: argparse.Namespace, package: str | None) -> str:
    name = args.module or package or os.path.splitext(os.path.basename(args.schema))[0]
    name = re.sub(r"\W", "_", name.replace(".", "_")).lower()
    if not name or name[0].isdigit():
        name = "sbe_" + name
    return name


def cmd_codegen(args: argparse.Namespace) -> int:
    if args.lang == "cython":
        from tickline.codecs.gen_cython import generate
    else:
        from tickline.codecs.gen_python import generate
    if args.build and args.lang != "cython":
        return _err("--build applies to --lang cython only (fault=user)")

    try:
        schema = load_schema(args.schema, strict=args.strict)
        for w in schema.warnings:
            print(w, file=sys.stderr)
        source = generate(schema, os.path.basename(args.schema))
    except SchemaError as exc:
        return _err(str(exc))
    except OSError as exc:
        return _err(f"cannot read schema file={args.schema}: {exc.strerror}")
    os.makedirs(args.output, exist_ok=True)
    name = _module_name(args, schema.package)
    path = os.path.join(args.output, name + (".pyx" if args.lang == "cython" else ".py"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    print(path)
    if args.build:
        from tickline.codecs.gen_cython import build

        try:
            print(build(source, name, args.output))
        except RuntimeError as exc:
            return _err(str(exc))
    return 0


def _read(path: str, binary: bool) -> Any:
    if path == "-":
        return sys.stdin.buffer.read() if binary else sys.stdin.read()
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def cmd_decode(args: argparse.Namespace) -> int:
    from tickline.codecs import otf

    try:
        schema = load_schema(args.schema)
        data = _read(args.file, True)
        data = data[args.offset:]
        if args.all:
            out: Any = otf.decode_all(schema, data, strict_enums=args.strict_enums)
        else:
            out, used = otf.decode(schema, data, strict_enums=args.strict_enums)
            # A message of a newer version than the schema may end in parts this schema does not know (newer
            # groups and var data): the acting block length and the header found everything known, the rest
            # is skipped.  From an older or the same version, bytes left over are not part of the message.
            if used != len(data) and int(out["header"]["version"]) <= schema.version:
                return _err(f"message error (the input's fault): file={args.file} {len(data) - used} trailing bytes "
                            f"after the message at offset={args.offset + used}; use --all for several messages")
    except SchemaError as exc:
        return _err(str(exc))
    except MessageError as exc:
        return _err(f"message error (the input's fault): file={args.file}: {exc}")
    except OSError as exc:
        return _err(f"cannot read file: {exc}")
    print(otf.to_json(out))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from tickline.codecs import otf

    try:
        schema = load_schema(args.schema)
        doc = otf.from_json(_read(args.file, False))
        docs = doc if isinstance(doc, list) else [doc]
        blob = b"".join(otf.encode(schema, d) for d in docs)
    except SchemaError as exc:
        return _err(str(exc))
    except (MessageError, ValueError) as exc:
        return _err(f"message error (the input's fault): file={args.file}: {exc}")
    except OSError as exc:
        return _err(f"cannot read file: {exc}")
    if args.output:
        with open(args.output, "wb") as f:
            f.write(blob)
    else:
        sys.stdout.buffer.write(blob)
        sys.stdout.buffer.flush()
    return 0


def cmd_compat(args: argparse.Namespace) -> int:
    from tickline.codecs import compat

    try:
        old = load_schema(args.old)
        new = load_schema(args.new)
    except SchemaError as exc:
        return _err(str(exc))
    except OSError as exc:
        return _err(f"cannot read schema file={exc.filename}: {exc.strerror}")
    report = compat.check(old, new)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    wanted = {"both": compat.BOTH, "new-by-old": (compat.NEW_BY_OLD,), "old-by-new": (compat.OLD_BY_NEW,)}[args.direction]
    return 0 if all(report.ok(d) for d in wanted) else 3


def cmd_bench(args: argparse.Namespace) -> int:
    from tickline.codecs import bench

    from tickline import benchkit

    results = bench.run(iterations=args.iterations, runs=args.runs)
    report = bench.to_benchkit(results)
    if args.json == "-":
        print(json.dumps(report.to_dict(), indent=2))
        args.json = None
    else:
        print(bench.format_table(results))
    benchkit.emit(report, args, table=False)
    return 0
