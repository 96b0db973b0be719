"""The generated SBE flyweights for tickline's own schemas, built once per process.

``generated("market_data.xml")`` and ``generated("orders.xml")`` return the
module ``tickline codegen`` would write for that schema, generated from the
XML shipped in ``tickline.schemas`` the first time it is asked for, so the
wire format can never drift from the schema file.  The module is registered
in ``sys.modules`` as ``tickline.schemas._sbe_<stem>`` so every user in the
process (feed, strategy, a venue in the same process) shares one set of
enum classes: ``Side.Buy`` from one is ``Side.Buy`` from the other.

Access-order checks are left on in the module; the hot paths here read root
block fields only (attributes unpacked at ``wrap``), which the checks do not
cover, and groups are read in schema order.
"""

from __future__ import annotations

import sys
import threading
import types

__all__ = ["generated", "md", "orders"]

_LOCK = threading.Lock()


def generated(schema_file: str) -> types.ModuleType:
    """The generated flyweight module for one of ``tickline.schemas``' files (cached per process)."""
    name = "tickline.schemas._sbe_" + schema_file.rsplit(".", 1)[0]
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    with _LOCK:  # two threads importing at once must not make two sets of enum classes
        mod = sys.modules.get(name)
        if mod is None:
            from tickline.codecs import load_builtin
            from tickline.codecs.gen_python import generate

            src = generate(load_builtin(schema_file), schema_file)
            mod = types.ModuleType(name)
            mod.__file__ = f"<generated from schemas/{schema_file}>"
            exec(compile(src, mod.__file__, "exec"), mod.__dict__)
            sys.modules[name] = mod
    return mod


def md() -> types.ModuleType:
    """Flyweights of ``schemas/market_data.xml``."""
    return generated("market_data.xml")


def orders() -> types.ModuleType:
    """Flyweights of ``schemas/orders.xml``."""
    return generated("orders.xml")
