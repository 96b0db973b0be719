"""Errors and warnings about SBE schemas and SBE messages.

Whose fault it is matters more than what broke:

- :class:`SchemaError` -- the schema author's fault: the XML breaks a rule of
  the SBE specification or of tickline's generator.  The message names the
  file, the line and the element in ``key=value`` form.
- :class:`MessageError` -- the fault of whoever produced the bytes or the JSON
  being decoded/encoded (a truncated buffer, an unknown templateId, a value
  out of range).
- :class:`AccessOrderError` -- the calling code's fault: a generated flyweight
  was read or written out of schema order (groups and var data must be
  visited in order, as in sbe-tool's precedence checks).
"""

from __future__ import annotations


def _kv(value: object) -> str:
    text = str(value)
    if text == "" or any(c.isspace() for c in text) or "=" in text:
        return repr(text)
    return text


class _SchemaProblem:
    """What a schema error and a schema warning both carry: where it is."""

    reason: str
    file: str
    line: int
    element: str
    name: str | None

    def _locate(self, reason: str, file: str, line: int, element: str, name: str | None) -> str:
        """Set the attributes; return the ``key=value`` location for the message."""
        self.reason, self.file, self.line, self.element, self.name = reason, file, line, element, name
        where = f"file={_kv(file)} line={line} element={element}"
        if name is not None:
            where += f" name={_kv(name)}"
        return where


class SchemaError(_SchemaProblem, ValueError):
    """The schema is invalid; the schema author has to fix it.

    Attributes: ``file``, ``line`` (1-based, 0 if unknown), ``element`` (the
    XML element's local name), ``name`` (its ``name`` attribute, if any) and
    ``reason``.
    """

    kind = "schema error"

    def __init__(self, reason: str, *, file: str = "?", line: int = 0, element: str = "?", name: str | None = None) -> None:
        where = self._locate(reason, file, line, element, name)
        super().__init__(f"{self.kind} (the schema author's fault, fix the schema): {where}: {reason}")


class SchemaWarning(_SchemaProblem, UserWarning):
    """Something in the schema that tickline works around; an error in strict mode."""

    def __init__(self, reason: str, *, file: str = "?", line: int = 0, element: str = "?", name: str | None = None) -> None:
        where = self._locate(reason, file, line, element, name)
        super().__init__(f"schema warning (the schema author's, tickline worked around it): {where}: {reason}")


class MessageError(ValueError):
    """The bytes or JSON given to a codec do not fit the schema (the input's fault)."""


class AccessOrderError(RuntimeError):
    """A flyweight was accessed out of schema order (the calling code's fault)."""
