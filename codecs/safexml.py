"""A small, hostile-input-safe XML reader for SBE schemas.

Schema files are untrusted input.  This reader uses expat directly and
refuses any document type declaration, so there are no external entities,
no internal entity expansion (billion laughs) and no DTD fetching.  XInclude
(``xi:include``) is honoured only for ``parse="xml"`` and only for files in
the same directory as the including file -- no URLs, no paths that climb out.

The result is a plain tree of :class:`Node` that remembers the file and line
of every element, so that schema errors can say where they are.

What one load may cost is capped (:class:`Limits`): the nesting depth of
elements (counted through includes), the total number of elements, of files
read (a file included twice counts twice) and of bytes read.  Exceeding a
cap is a :class:`SchemaError`, never a ``RecursionError`` or a stalled load.
"""

from __future__ import annotations

import os
import xml.parsers.expat
from dataclasses import dataclass, field

from tickline.codecs.errors import SchemaError

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class Limits:
    """Caps on what loading one schema may read.  The defaults are far above real schemas (CME's
    iLink 3 schema has about 1,500 elements, nesting depth 6, one file of 290 kB)."""

    max_depth: int = 64  # element nesting, through includes (bounds the parser's recursion)
    max_elements: int = 200_000  # elements in all files together
    max_files: int = 100  # the schema and every file it includes, each time it is included
    max_bytes: int = 32 << 20  # bytes of all files together


DEFAULT_LIMITS = Limits()


class _Budget:
    """What is left of the limits during one load."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.elements = limits.max_elements
        self.files = limits.max_files
        self.bytes = limits.max_bytes

    def read(self, path: str, node: Node | None) -> bytes:
        """Read one file, counting it and its bytes."""
        where = node.error if node is not None else (lambda r: SchemaError(r, file=os.path.basename(path), line=0, element="?"))
        self.files -= 1
        if self.files < 0:
            raise where(f"too many files: more than max_files={self.limits.max_files} read for one schema "
                        f"(includes are counted each time they are included)")
        with open(path, "rb") as f:
            data = f.read(self.bytes + 1)
        self.bytes -= len(data)
        if self.bytes < 0:
            raise where(f"too large: the schema and its includes exceed max_bytes={self.limits.max_bytes}")
        return data


@dataclass
class Node:
    """One XML element: local name, namespace URI, attributes, text, children, location."""

    tag: str
    ns: str
    attrib: dict[str, str]
    file: str
    line: int
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrib.get(key, default)

    def error(self, reason: str) -> SchemaError:
        return SchemaError(reason, file=self.file, line=self.line, element=self.tag, name=self.attrib.get("name"))


def _split(name: str) -> tuple[str, str]:
    if " " in name:
        ns, local = name.split(" ", 1)
        return ns, local
    return "", name


def parse_bytes(data: bytes, file: str, *, depth: int = 0, budget: _Budget | None = None) -> Node:
    """Parse one XML document (no includes resolved) into a :class:`Node` tree.

    ``depth`` is the nesting depth where the document's root will sit (an include's place); ``budget``
    the limits left for the whole load (default: a fresh :data:`DEFAULT_LIMITS`)."""
    budget = budget if budget is not None else _Budget(DEFAULT_LIMITS)
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    roots: list[Node] = []
    base = os.path.basename(file)

    def refuse(what: str) -> SchemaError:
        return SchemaError(
            f"{what} are not allowed in a schema (untrusted input: no DTDs, no entities)",
            file=base, line=parser.CurrentLineNumber, element="!DOCTYPE",
        )

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, local = _split(name)
        clean = {_split(k)[1]: v for k, v in attrs.items()}
        if depth + len(stack) >= budget.limits.max_depth:
            raise SchemaError(f"elements nested deeper than max_depth={budget.limits.max_depth}",
                              file=base, line=parser.CurrentLineNumber, element=local, name=clean.get("name"))
        budget.elements -= 1
        if budget.elements < 0:
            raise SchemaError(f"too many elements: more than max_elements={budget.limits.max_elements} in the schema "
                              "and its includes", file=base, line=parser.CurrentLineNumber, element=local, name=clean.get("name"))
        node = Node(local, ns, clean, base, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    def doctype(*_args: object) -> None:
        raise refuse("document type declarations (DTDs)")

    def entity(*_args: object) -> None:
        raise refuse("entity declarations")

    def external(*_args: object) -> int:
        raise refuse("external entities")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise SchemaError(f"not well-formed XML: {xml.parsers.expat.errors.messages[exc.code]}",
                          file=base, line=exc.lineno, element="?") from None
    except SchemaError:
        raise
    except (LookupError, ValueError) as exc:  # e.g. an unknown encoding in the XML declaration
        raise SchemaError(f"unreadable XML: {exc}", file=base, line=1, element="?xml") from None
    if len(roots) != 1:
        raise SchemaError("no root element", file=base, line=1, element="?")
    return roots[0]


def load(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Node:
    """Read a schema file and resolve its XIncludes (same directory only), within ``limits``."""
    path = os.path.realpath(os.fspath(path))
    budget = _Budget(limits)
    root = parse_bytes(budget.read(path, None), path, budget=budget)
    _resolve_includes(root, os.path.dirname(path), (path,), 1, budget)
    return root


def _resolve_includes(node: Node, directory: str, chain: tuple[str, ...], depth: int, budget: _Budget) -> None:
    """Replace the include elements among ``node``'s children (``node`` sits at ``depth``, the root at 1)."""
    out: list[Node] = []
    for child in node.children:
        if child.ns == XINCLUDE_NS and child.tag == "include":
            out.append(_include(child, directory, chain, depth, budget))
        else:
            _resolve_includes(child, directory, chain, depth + 1, budget)
            out.append(child)
    node.children = out


def _include(node: Node, directory: str, chain: tuple[str, ...], depth: int, budget: _Budget) -> Node:
    href = node.get("href")
    if not href:
        raise node.error("xi:include needs an href")
    if node.get("parse", "xml") != "xml":
        raise node.error(f"only parse=xml includes are supported, got parse={node.get('parse')}")
    if "://" in href or href.startswith("/") or os.path.isabs(href) or os.sep in href or "/" in href or "\\" in href:
        raise node.error(f"xi:include may only name a file next to the schema, got href={href}")
    target = os.path.realpath(os.path.join(directory, href))
    if os.path.dirname(target) != directory:
        raise node.error(f"xi:include may only name a file next to the schema, got href={href}")
    if target in chain or len(chain) > _MAX_INCLUDE_DEPTH:
        raise node.error(f"xi:include cycle or nesting too deep at href={href}")
    if not os.path.isfile(target):
        raise node.error(f"xi:include file not found: href={href}")
    included = parse_bytes(budget.read(target, node), target, depth=depth, budget=budget)
    _resolve_includes(included, directory, chain + (target,), depth + 1, budget)
    return included
