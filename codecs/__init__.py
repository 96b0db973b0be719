"""tickline.codecs: schema-first SBE codecs.

- :func:`load_schema` / :func:`load_builtin` parse and validate SBE XML into
  the IR (:mod:`tickline.codecs.ir`);
- :mod:`tickline.codecs.otf` decodes and encodes any message from the IR
  alone (the JSON form of ``tickline sbe-decode`` / ``sbe-encode``);
- :mod:`tickline.codecs.gen_python` writes typed Python flyweights
  (``tickline codegen``), which use :mod:`tickline.codecs.runtime`;
- :class:`BatchDecoder` (:mod:`tickline.codecs.batch`, imported lazily: it
  needs numpy) decodes many messages of one template into numpy columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports
from tickline.codecs.errors import AccessOrderError, MessageError, SchemaError, SchemaWarning
from tickline.codecs.schema import load_builtin, load_schema

_EXPORTS = {
    "Batch": "batch",
    "BatchDecoder": "batch",
}

__all__ = ["AccessOrderError", "Batch", "BatchDecoder", "MessageError", "SchemaError", "SchemaWarning", "load_builtin",
           "load_schema"]

if TYPE_CHECKING:
    from tickline.codecs.batch import Batch, BatchDecoder
else:
    __getattr__ = lazy_exports(__name__, _EXPORTS)[0]  # dir() keeps listing the eager names too
