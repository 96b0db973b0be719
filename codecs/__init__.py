"""tickline.codecs: schema-first SBE codecs.

- :func:`load_schema` / :func:`load_builtin` parse and validate SBE XML into
  the IR (:mod:`tickline.codecs.ir`);
- :mod:`tickline.codecs.otf` decodes and encodes any message from the IR
  alone (the JSON form of ``tickline sbe-decode`` / ``sbe-encode``);
- :mod:`tickline.codecs.gen_python` writes typed Python flyweights
  (``tickline codegen``), which use :mod:`tickline.codecs.runtime`.
"""

from tickline.codecs.errors import AccessOrderError, MessageError, SchemaError, SchemaWarning
from tickline.codecs.schema import load_builtin, load_schema

__all__ = ["AccessOrderError", "MessageError", "SchemaError", "SchemaWarning", "load_builtin", "load_schema"]
