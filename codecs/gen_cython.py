"""Generate compiled SBE codecs: Cython ``cdef`` classes (``tickline codegen --lang cython``).

The generated ``.pyx`` has the API of the pure-Python flyweights of
:mod:`tickline.codecs.gen_python` (same class, property, method and module
names, same JSON form, same errors for hostile bytes), and is built with
:func:`build` (Cython, then the machine's C compiler) into an extension module.

Memory rules (the reason for the design):

- A flyweight never keeps a pointer into memory it does not own across calls.
  Every read or write of the caller's buffer takes the buffer protocol
  (``PyObject_GetBuffer``), checks the bounds, touches the bytes and releases
  the buffer before the call returns.  So a ``bytearray`` may be resized, a
  poll's view revoked and an Aeron ``BufferClaim`` committed between calls:
  the next call sees the new length or is refused (a committed claim exports
  no buffer), never reads or writes freed memory.  The flyweight keeps a
  reference to the buffer object itself (its owner), as the Python ones do.
  A ``bytearray`` (exactly that type) is read and written through its own
  pointer and length instead of an export, where no Python code can run
  between the bounds check and the last touch of the bytes (values are
  converted before; only C copies and allocations of int, bytes and str,
  which the cyclic collector does not track, happen in between); the calls
  that do run Python code while they touch the bytes (``put_rows()``,
  ``rows()``, reading a numeric array of an encoder, a text decode that may
  fail) take the export, so the bytearray cannot be resized under them.
- A decoder copies its block (the root block at ``wrap()``, an entry's block at
  ``next()``) into an array inside the decoder object, and reads fields from
  that copy: a field read is a property call and a load, with no buffer
  protocol round trip.  As with the Python decoders, a decoder sees later
  writes to the buffer only after the next ``wrap()``/``next()``.  Composite
  views of a decoder point into that array and keep the decoder alive.
- Offsets come from the caller and lengths and counts from the wire: every
  check is written so that it cannot overflow (``offset > len - need``, counts
  compared by division), and fails with the error class the Python codecs
  raise (``MessageError``, ``AccessOrderError``).

Differences from the Python flyweights: access-order checks are switched for
the whole module only (``set_check_order``; the classes are static types, so
``Cls.check_order = False`` is not available), and a value that does not fit
its field raises ``struct.error`` as the Python ones do, but with Cython's text.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from tickline.codecs import gen_base, ir, naming
from tickline.codecs.gen_base import BaseGen, Leaf, Slot
from tickline.codecs.schema import py_encoding

#: The Cython release the generated code is written for and tested with (pyproject's ``cython`` extra pins it).
CYTHON_REQUIREMENT = "cython>=3.1,<3.2"

_C = {"char": ("u8", "uint8_t"), "int8": ("i8", "int8_t"), "int16": ("i16", "int16_t"), "int32": ("i32", "int32_t"),
      "int64": ("i64", "int64_t"), "uint8": ("u8", "uint8_t"), "uint16": ("u16", "uint16_t"),
      "uint32": ("u32", "uint32_t"), "uint64": ("u64", "uint64_t"), "float": ("f32", "float"), "double": ("f64", "double")}

_PRELUDE_C = r'''
#include <stdint.h>
#include <string.h>
#define TL_SWAP __SWAP__
static inline uint8_t tl_g_u8(const unsigned char *p) { return p[0]; }
static inline int8_t tl_g_i8(const unsigned char *p) { return (int8_t)p[0]; }
static inline uint16_t tl_g_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return TL_SWAP ? __builtin_bswap16(v) : v; }
static inline uint32_t tl_g_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return TL_SWAP ? __builtin_bswap32(v) : v; }
static inline uint64_t tl_g_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return TL_SWAP ? __builtin_bswap64(v) : v; }
static inline int16_t tl_g_i16(const unsigned char *p) { return (int16_t)tl_g_u16(p); }
static inline int32_t tl_g_i32(const unsigned char *p) { return (int32_t)tl_g_u32(p); }
static inline int64_t tl_g_i64(const unsigned char *p) { return (int64_t)tl_g_u64(p); }
static inline float tl_g_f32(const unsigned char *p) { uint32_t u = tl_g_u32(p); float f; memcpy(&f, &u, 4); return f; }
static inline double tl_g_f64(const unsigned char *p) { uint64_t u = tl_g_u64(p); double f; memcpy(&f, &u, 8); return f; }
static inline void tl_p_u8(unsigned char *p, uint8_t v) { p[0] = v; }
static inline void tl_p_i8(unsigned char *p, int8_t v) { p[0] = (uint8_t)v; }
static inline void tl_p_u16(unsigned char *p, uint16_t v) { if (TL_SWAP) v = __builtin_bswap16(v); memcpy(p, &v, 2); }
static inline void tl_p_u32(unsigned char *p, uint32_t v) { if (TL_SWAP) v = __builtin_bswap32(v); memcpy(p, &v, 4); }
static inline void tl_p_u64(unsigned char *p, uint64_t v) { if (TL_SWAP) v = __builtin_bswap64(v); memcpy(p, &v, 8); }
static inline void tl_p_i16(unsigned char *p, int16_t v) { tl_p_u16(p, (uint16_t)v); }
static inline void tl_p_i32(unsigned char *p, int32_t v) { tl_p_u32(p, (uint32_t)v); }
static inline void tl_p_i64(unsigned char *p, int64_t v) { tl_p_u64(p, (uint64_t)v); }
static inline void tl_p_f32(unsigned char *p, float v) { uint32_t u; memcpy(&u, &v, 4); tl_p_u32(p, u); }
static inline void tl_p_f64(unsigned char *p, double v) { uint64_t u; memcpy(&u, &v, 8); tl_p_u64(p, u); }
static inline void tl_clear(Py_buffer *b) { b->obj = NULL; }
#include <structmember.h>
/* Expose the object slot at ``offset`` of ``type``'s instances as the read-only attribute ``name``: a member
   descriptor, which CPython reads without a call (LOAD_ATTR_SLOT), unlike a property.  The definition lives as
   long as the type (the module's lifetime). */
static int tl_expose(PyTypeObject *type, const char *name, Py_ssize_t offset) {
    PyMemberDef *def = (PyMemberDef *)PyMem_RawCalloc(1, sizeof(PyMemberDef));
    char *copy = (char *)PyMem_RawMalloc(strlen(name) + 1);
    if (def == NULL || copy == NULL) { PyErr_NoMemory(); return -1; }
    strcpy(copy, name);
    def->name = copy; def->type = T_OBJECT_EX; def->offset = offset; def->flags = READONLY;
    PyObject *descr = PyDescr_NewMember(type, def);
    if (descr == NULL) return -1;
    int rc = PyDict_SetItemString(type->tp_dict, name, descr);
    Py_DECREF(descr);
    PyType_Modified(type);
    return rc;
}
static inline void tl_release(Py_buffer *b) { if (b->obj != NULL) PyBuffer_Release(b); }
'''

_PRELUDE_PYX = '''
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset, memcmp
from libc.math cimport isfinite, fabs
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_CheckExact, PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1
from cpython.object cimport PyTypeObject, PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.number cimport PyNumber_Index

cdef extern from *:
    """
__C__
    """
    uint8_t tl_g_u8(const unsigned char*)
    int8_t tl_g_i8(const unsigned char*)
    uint16_t tl_g_u16(const unsigned char*)
    uint32_t tl_g_u32(const unsigned char*)
    uint64_t tl_g_u64(const unsigned char*)
    int16_t tl_g_i16(const unsigned char*)
    int32_t tl_g_i32(const unsigned char*)
    int64_t tl_g_i64(const unsigned char*)
    float tl_g_f32(const unsigned char*)
    double tl_g_f64(const unsigned char*)
    void tl_p_u8(unsigned char*, uint8_t)
    void tl_p_i8(unsigned char*, int8_t)
    void tl_p_u16(unsigned char*, uint16_t)
    void tl_p_u32(unsigned char*, uint32_t)
    void tl_p_u64(unsigned char*, uint64_t)
    void tl_p_i16(unsigned char*, int16_t)
    void tl_p_i32(unsigned char*, int32_t)
    void tl_p_i64(unsigned char*, int64_t)
    void tl_p_f32(unsigned char*, float)
    void tl_p_f64(unsigned char*, double)
    void tl_clear(Py_buffer*)
    int tl_expose(PyTypeObject*, const char*, Py_ssize_t) except -1
    void tl_release(Py_buffer*)

import math
import struct

from enum import IntEnum, IntFlag

from tickline.codecs import runtime as _rt
from tickline.codecs.runtime import AccessOrderError, MessageError

cdef bint _CHECK_ORDER = True
cdef bint _STRICT_ENUMS = False
_EMPTY = b""


cdef inline const unsigned char* _bytearray(object buf, Py_buffer* b, Py_ssize_t offset, Py_ssize_t need,
                                            str what) except NULL:
    """A bytearray's bytes without an export (no buffer protocol round trip): ``b.obj`` stays NULL, so releasing
    ``b`` does nothing.  The pointer is valid until Python code runs (only Python code can resize the bytearray):
    callers that pass ``pinned=False`` to _ro/_rw touch it only with C copies and allocations of objects the cyclic
    collector does not track (int, bytes, str from a C codec), which never run Python code, and are done with it
    before they return.  A caller that runs Python code in between (a user's __index__, a list) pins the buffer."""
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(buf)
    if offset < 0 or need < 0 or need > n or offset > n - need:
        raise MessageError(f"buffer too small: {what} needs {<object>offset + need} bytes, buffer length={n}")
    tl_clear(b)
    b.buf = PyByteArray_AS_STRING(buf)
    b.len = n
    return <const unsigned char*>b.buf + offset


cdef const unsigned char* _ro(object buf, Py_buffer* b, Py_ssize_t offset, Py_ssize_t need, str what,
                              bint pinned=False) except NULL:
    """Take ``buf``'s buffer (released by the caller) and check that ``need`` bytes at ``offset`` are in it."""
    cdef Py_ssize_t n
    if not pinned and PyByteArray_CheckExact(buf):
        return _bytearray(buf, b, offset, need, what)
    # The checks cannot overflow (need <= len, then offset > len - need); the messages add in Python ints.
    PyObject_GetBuffer(buf, b, PyBUF_SIMPLE)
    if offset < 0 or need < 0 or need > b.len or offset > b.len - need:
        n = b.len
        PyBuffer_Release(b)
        raise MessageError(f"buffer too small: {what} needs {<object>offset + need} bytes, buffer length={n}")
    return <const unsigned char*>b.buf + offset


cdef unsigned char* _rw(object buf, Py_buffer* b, Py_ssize_t offset, Py_ssize_t need, str what,
                        bint bounds_first=True, bint pinned=False) except NULL:
    """As _ro, for writing.  A buffer that refuses to be written (bytes, a committed or aborted claim) raises as
    the Python codecs do: a group, var data or wrap checks the length first (MessageError when too short; an
    ended claim has length 0), then TypeError, as struct.pack_into does for a field."""
    cdef Py_ssize_t n
    if not pinned and PyByteArray_CheckExact(buf):
        return <unsigned char*>_bytearray(buf, b, offset, need, what)
    try:
        PyObject_GetBuffer(buf, b, PyBUF_WRITABLE)
    except BufferError as exc:
        if bounds_first:
            try:
                n = len(buf)
            except TypeError:
                n = -1
            if n >= 0 and (offset < 0 or need < 0 or need > n or offset > n - need):
                raise MessageError(f"buffer too small: {what} needs {<object>offset + need} bytes, buffer length={n}") from None
        tp = type(buf)
        raise TypeError(f"argument must be read-write bytes-like object, not {(<PyTypeObject*>tp).tp_name.decode()}") from exc
    if offset < 0 or need < 0 or need > b.len or offset > b.len - need:
        n = b.len
        PyBuffer_Release(b)
        raise MessageError(f"buffer too small: {what} needs {<object>offset + need} bytes, buffer length={n}")
    return <unsigned char*>b.buf + offset


cdef inline void _setm(PyObject** slot, object v):
    """Store ``v`` in an object slot a member descriptor exposes (the slot holds a reference)."""
    Py_INCREF(v)
    Py_XDECREF(slot[0])
    slot[0] = <PyObject*>v


cdef int64_t _ci(object v, int64_t lo, int64_t hi) except? -1:
    """A signed field's value: struct.error (as struct.pack_into) when it is not an integer in [lo, hi]."""
    cdef int64_t c
    try:
        if not isinstance(v, int):
            v = PyNumber_Index(v)  # as struct: a float is refused, an object with __index__ is not
        c = v
    except (OverflowError, TypeError) as exc:
        raise struct.error(f"value={v!r} does not fit the field: {exc}") from None
    if c < lo or c > hi:
        raise struct.error(f"value={v!r} is out of range {lo}..{hi}")
    return c


cdef uint64_t _cu(object v, uint64_t hi) except? 0xFFFFFFFFFFFFFFFF:
    """An unsigned field's value: struct.error when it is not an integer in [0, hi]."""
    cdef uint64_t c
    try:
        if not isinstance(v, int):
            v = PyNumber_Index(v)
        c = v
    except (OverflowError, TypeError) as exc:
        raise struct.error(f"value={v!r} does not fit the field: {exc}") from None
    if c > hi:
        raise struct.error(f"value={v!r} is out of range 0..{hi}")
    return c


cdef double _cf(object v, bint single) except? -1.0:
    """A float field's value: struct.error when not a number, OverflowError when too large for a float32."""
    cdef double c
    try:
        c = v
    except TypeError:
        raise struct.error("required argument is not a float") from None
    if single and isfinite(c) and fabs(c) > 3.4028234663852886e38:
        raise OverflowError("float too large to pack with f format")
    return c


cdef class _Flyweight:
    """What every generated class holds.  ``_ptr`` is set in decoders (their block copy) and in composite
    views of a decoder (into the decoder's copy, ``_owner`` keeping it alive); NULL elsewhere: then every
    access goes through the buffer protocol of ``_buf``."""
    cdef object _buf
    cdef Py_ssize_t _offset
    cdef long long _acting_version
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _acting_block_length
    cdef Py_ssize_t _empty_left
    cdef int _step
    cdef _Flyweight _open
    cdef _Flyweight _msg
    cdef Py_ssize_t _block_length
    cdef Py_ssize_t _count
    cdef Py_ssize_t _index
    cdef const unsigned char* _ptr
    cdef object _owner

    cpdef bint _finished(self):
        return True


cdef inline const unsigned char* _at(_Flyweight self, Py_buffer* b, Py_ssize_t off, Py_ssize_t size,
                                     bint pinned=False) except NULL:
    """Where a field's bytes are: in the decoder's copy (nothing to release), else in the buffer, taken into ``b``."""
    tl_clear(b)
    if self._ptr != NULL:
        return self._ptr + off
    if self._offset > (<Py_ssize_t>1 << 62):
        raise MessageError(f"offset={self._offset} is out of range")
    return _ro(self._buf, b, self._offset + off, size, "field", pinned)


cdef inline unsigned char* _w(_Flyweight self, Py_buffer* b, Py_ssize_t off, Py_ssize_t size) except NULL:
    if self._ptr != NULL:
        raise AttributeError("a decoder's view is read-only")
    if self._offset > (<Py_ssize_t>1 << 62):
        raise MessageError(f"offset={self._offset} is out of range")
    return _rw(self._buf, b, self._offset + off, size, "field", False)
'''


def _cname(primitive: str) -> tuple[str, str]:
    return _C[primitive]


class _CyGen(BaseGen):
    """The Cython generator: the walk, naming, enums, sets, accessors and JSON-form methods are gen_base's;
    this writes cdef classes for composites, messages and groups, and the C reads and writes of their fields."""

    ANNOTATE = False
    MSG_DECL = "cdef _Flyweight msg = {}"
    OPEN_RETURN = "return self._open"
    CHECK_ORDER = "_CHECK_ORDER"
    FINISHED_DEF = "cpdef bint _finished(self):"
    FINISHED_OPEN = "self._open._finished()"

    def __init__(self, schema: ir.Schema, source: str) -> None:
        super().__init__(schema, source)
        self.cdef_classes: list[str] = []
        self.exposures: list[tuple[str, list[str]]] = []  # decoder class -> its plain fields (member descriptors)
        self._in_decoder = False  # generating a message or group decoder (fields read from its block copy)
        self._text_cache = True  # a decoder's char array field reads through its one-entry cache

    # -- module --------------------------------------------------------------------------------

    def module(self) -> str:
        s = self.s
        body = self.walk()
        self.w("# cython: language_level=3, boundscheck=False, wraparound=False, annotation_typing=False")
        self.w("# cython: cdivision=True, binding=False, embedsignature=False, always_allow_keywords=True")
        self.w('"""SBE codecs (compiled) generated by tickline codegen --lang cython -- do not edit.')
        self.w()
        self.w(f"schema: {self.source}")
        self.w(f"package={s.package} id={s.id} version={s.version} semanticVersion={s.semantic_version} byteOrder={s.byte_order}")
        self.w('"""')
        swap = "1" if s.byte_order == "bigEndian" else "0"
        c_code = "\n".join("    " + line if line else "" for line in _PRELUDE_C.replace("__SWAP__", swap).strip("\n").splitlines())
        self.lines.extend(_PRELUDE_PYX.replace("__C__", c_code).splitlines())
        self.w()
        self.w('__all__ = ["AccessOrderError", "MessageError", "decode", "set_check_order", "set_strict_enums"]')
        self.w()
        self.w(f"SCHEMA_ID = {s.id}")
        self.w(f"SCHEMA_VERSION = {s.version}")
        self.w(f"SCHEMA_PACKAGE = {s.package!r}")
        self.w(f"HEADER_LENGTH = {s.header.size}")
        self.w("COMPILED = True")
        self.w()
        for name in sorted(self.bytes_caches):
            self.w(f"cdef dict {name} = {{}}  # bounded by _rt.encode_str")
        for name in sorted(self.str_caches):
            self.w(f"cdef dict {name} = {{}}  # bounded by _rt.decode_str")
        self.w()
        for cls in self.cdef_classes:
            self.w(f"cdef class {cls}")
        self.w()
        self.lines.extend(body)
        return self.text()

    def enum(self, name: str, t: ir.EnumType) -> None:
        super().enum(name, t)
        if t.primitive in ("char", "uint8"):
            # A read of a one-byte enum indexes this tuple in C (None: null or unknown, then the general path).
            self.w(f"cdef tuple _{name}_LUT = tuple([_{name}_MEMBERS.get(i) for i in range(256)])")
            self.w()

    # -- slot accessors ------------------------------------------------------------------------

    def getter_expr_lines(self, slot: Slot, versioned: bool, raw: bool = False) -> list[str]:
        t = slot.t
        lines, done = self.getter_prelude(slot, versioned, raw)
        if done:
            return lines
        if isinstance(t, ir.CompositeType):
            if self._in_decoder:  # wired to the decoder's block copy once, in __cinit__
                return lines + [f"cdef {self.cls(t)} c = self._c_{slot.py}", "c._acting_version = self._acting_version",
                                "return c"]
            lines += [f"cdef {self.cls(t)} c = self._c_{slot.py}",
                      "if self._ptr != NULL:",
                      f"    c._ptr = self._ptr + {slot.offset}",
                      "    c._owner = self if self._owner is None else self._owner",
                      "else:",
                      "    c._ptr = NULL",
                      "    c._buf = self._buf",
                      f"    c._offset = self._offset + {slot.offset}",
                      "c._acting_version = self._acting_version",
                      "return c"]
            return lines
        size = t.size
        if self._in_decoder and self._text_cache and isinstance(t, ir.EncodedType) and t.is_char_array:
            # The decoder remembers the last text it read for this field: a stream repeats its symbols, so a
            # memcmp of the bytes usually replaces making a bytes object and looking it up.
            enc = py_encoding(t.character_encoding)
            cache = self.str_cache(enc)
            k = f"{slot.py}"
            return lines + [f"cdef const unsigned char* p = self._blk + {slot.offset}",
                            f"if self._ss_{k} is not None and memcmp(p, self._sc_{k}, {t.length}) == 0:",
                            f"    return self._ss_{k}",
                            f"v = PyBytes_FromStringAndSize(<const char*>p, {t.length})",
                            f"s = {cache}.get(v)", "if s is None:", f"    s = _rt.decode_str(v, {enc!r}, {cache})",
                            f"memcpy(self._sc_{k}, p, {t.length})", f"self._ss_{k} = s", "return s"]
        if self._in_decoder:
            lines += [f"cdef const unsigned char* p = self._blk + {slot.offset}"]
            release = []
        else:
            lines += ["cdef Py_buffer b", f"cdef const unsigned char* p = _at(self, &b, {slot.offset}, {size})"]
            release = ["tl_release(&b)"]
        if isinstance(t, ir.EnumType) and not raw and t.primitive in ("char", "uint8"):
            lines += ["cdef uint8_t r = tl_g_u8(p)"] + release
            lines += [f"m = _{self.cls(t)}_LUT[r]", "if m is not None:", "    return m"]
            if 0 <= t.null_value <= 255:
                lines += [f"if r == {t.null_value}:", "    return None"]
            lines += ["v = <object>r"]
            return lines + self.enum_tail(slot, t)
        if isinstance(t, (ir.EnumType, ir.SetType)):
            short = _cname(t.primitive)[0]
            lines += [f"v = <object>tl_g_{short}(p)"] + release
            if isinstance(t, ir.SetType):
                return lines + [f"return {self.cls(t)}(v)"]
            if raw:
                return lines + ["return v"]
            return lines + self.enum_tail(slot, t)
        assert isinstance(t, ir.EncodedType)
        short, _ctype = _cname(t.primitive)
        if t.primitive == "char" and t.length > 1:
            enc = py_encoding(t.character_encoding)
            cache = self.str_cache(enc)
            return lines + [f"v = PyBytes_FromStringAndSize(<const char*>p, {t.length})"] + release + [
                f"s = {cache}.get(v)", "if s is None:", f"    s = _rt.decode_str(v, {enc!r}, {cache})", "return s"]
        if t.length > 1:
            step = t.primitive_size
            if not self._in_decoder:  # a list is built while the bytes are read: pin the buffer
                lines[-1] = lines[-1].replace(f", {size})", f", {size}, True)")
            lines = lines[:-1] + ["cdef Py_ssize_t i", lines[-1]]
            lines += [f"v = tuple([tl_g_{short}(p + i * {step}) for i in range({t.length})])"] + release
            if slot.presence == "optional":
                return lines + [f"return _rt.array_nulls(v, {self.null_literal(t.null)})"]
            return lines + ["return v"]
        if slot.presence == "optional":
            null = t.null
            if isinstance(null, float) and null != null:
                return lines + [f"cdef double v = tl_g_{short}(p)"] + release + ["if v != v:", "    return None", "return v"]
            if ir.is_float(t.primitive):
                return lines + [f"v = tl_g_{short}(p)"] + release + [f"return None if v == {null!r} else v"]
            # Compare the raw bits in C: the null of a signed type is its two's complement pattern.
            bits = 8 * t.primitive_size
            ushort = "u" + short[1:] if short.startswith("i") else short
            lines += [f"cdef uint{bits}_t r = tl_g_{ushort}(p)"] + release
            lines += [f"if r == {hex(int(null) & ((1 << bits) - 1))}U:", "    return None"]
            if t.primitive == "char":
                return lines + ["return chr(r)"]
            return lines + ([f"return <int{bits}_t>r"] if short.startswith("i") else ["return r"])
        lines += [f"v = tl_g_{short}(p)"] + release
        return lines + (["return chr(v)"] if t.primitive == "char" else ["return v"])

    def _convert(self, primitive: str, value: str) -> str:
        """C expression converting the Python expression ``value`` for a field of ``primitive``."""
        if ir.is_float(primitive):
            return f"_cf({value}, {primitive == 'float'})"
        lo, hi = ir.INT_RANGE[primitive]
        if lo < 0:
            return f"_ci({value}, {lo + 1} - 1, {hi})"
        return f"_cu({value}, {hi}u)" if hi < 2**63 else f"_cu({value}, 0xFFFFFFFFFFFFFFFF)"

    def setter_lines(self, slot: Slot, raw: bool = False) -> list[str]:
        t = slot.t
        off = slot.offset
        if isinstance(t, (ir.EnumType, ir.SetType)):
            short, ctype = _cname(t.primitive)
            if isinstance(t, ir.SetType) or raw:
                val = "int(value)"
            else:
                val = f"{t.null_value} if value is None else int(value)"
            return [f"cdef {ctype} c = {self._convert(t.primitive, val)}", "cdef Py_buffer b",
                    f"cdef unsigned char* p = _w(self, &b, {off}, {t.size})", f"tl_p_{short}(p, c)", "PyBuffer_Release(&b)"]
        assert isinstance(t, ir.EncodedType)
        short, ctype = _cname(t.primitive)
        if t.primitive == "char" and t.length > 1:
            enc = py_encoding(t.character_encoding)
            cache = self.bytes_cache(enc)
            return ["cdef Py_buffer b", "cdef unsigned char* p", "cdef Py_ssize_t n",
                    f"raw = {cache}.get(value)", "if raw is None:", f"    raw = _rt.encode_str(value, {enc!r}, {cache})",
                    "n = PyBytes_GET_SIZE(raw)",
                    f"if n > {t.length}:",
                    f'    raise MessageError(f"{slot.json}: value={{value!r}} is {{n}} bytes, longer than length={t.length}")',
                    f"p = _w(self, &b, {off}, {t.length})",
                    "memcpy(p, PyBytes_AS_STRING(raw), n)",
                    f"memset(p + n, 0, {t.length} - n)",
                    "PyBuffer_Release(&b)"]
        if t.length > 1:
            step = t.primitive_size
            src = f"_rt.array_put(value, {self.null_literal(t.null)})" if slot.presence == "optional" else "tuple(value)"
            return ["cdef Py_buffer b", "cdef unsigned char* p", "cdef Py_ssize_t i",
                    f"cdef {ctype} c[{t.length}]",
                    f"vals = {src}",
                    f"if len(vals) != {t.length}:",
                    f'    raise struct.error(f"pack_into expected {t.length} items for packing (got {{len(vals)}})")',
                    f"for i in range({t.length}):",
                    f"    c[i] = {self._convert(t.primitive, 'vals[i]')}",
                    f"p = _w(self, &b, {off}, {t.size})",
                    f"for i in range({t.length}):",
                    f"    tl_p_{short}(p + i * {step}, c[i])",
                    "PyBuffer_Release(&b)"]
        val = "ord(value)" if t.primitive == "char" else "value"
        if slot.presence == "optional":
            val = self.or_null(t, "value", val)
        return [f"cdef {ctype} c = {self._convert(t.primitive, val)}", "cdef Py_buffer b",
                f"cdef unsigned char* p = _w(self, &b, {off}, {t.size})", f"tl_p_{short}(p, c)", "PyBuffer_Release(&b)"]

    # -- composites ----------------------------------------------------------------------------

    def composite(self, name: str, t: ir.CompositeType) -> None:
        slots = gen_base.member_slots(t)
        comps = [sl for sl in slots if isinstance(sl.t, ir.CompositeType)]
        self.cdef_classes.append(name)
        self._cache = None
        self._in_decoder = False
        self.w()
        self.w()
        self.w(f"cdef class {name}(_Flyweight):")
        self.composite_head(t)
        for c in comps:
            self.w(f"cdef {self.cls(c.t)} _c_{c.py}", 1)
        self.w()
        self.w("def __cinit__(self):", 1)
        self.w("self._buf = _EMPTY", 2)
        self.w(f"self._acting_version = {self.s.version}", 2)
        for c in comps:
            self.w(f"self._c_{c.py} = {self.cls(c.t)}()", 2)
        self.w()
        self.w(f"def wrap(self, buf, Py_ssize_t offset, long long acting_version={self.s.version}):", 1)
        self.assign_lines(["buf", "offset", "acting_version"])
        self.w("self._ptr = NULL", 2)
        self.w("self._owner = None", 2)
        self.w("return self", 2)
        self.w()
        self.composite_tail(name, slots)

    # -- messages and groups -------------------------------------------------------------------

    def block_class(self, base: str, role: str, label: str, slots: list[Slot], groups: list[ir.Group],
                    data: list[ir.VarData], msg: ir.Message | None, group: ir.Group | None) -> None:
        name = base + role
        dec = role == "Decoder"
        self._block_len = msg.block_length if msg is not None else (group.block_length if group is not None else 0)
        self.cdef_classes.append(name)
        self._in_decoder = dec
        self._is_message_ctx = msg is not None
        self._cache = None
        self._plain = []
        self._slot_views = {}
        self._attr_views = set()
        comps = [sl for sl in slots if isinstance(sl.t, ir.CompositeType)]
        block = msg.block_length if msg is not None else (group.block_length if group is not None else 0)
        self.w()
        self.w()
        self.w(f"cdef class {name}(_Flyweight):")
        about = ["Compiled; wraps a buffer without keeping a pointer into it; reuse one instance per stream.",
                 "Not thread-safe."]
        if dec:
            about += ["wrap() copies the root block into the decoder; fields are read from that copy, so later",
                      "writes to the buffer are seen only after the next wrap(); groups and var data are read in place."]
        self.block_doc(role, label, msg, group, about)
        self.w()
        self.w(f"BLOCK_LENGTH = {block}", 1)
        if msg is not None:
            self.w(f"TEMPLATE_ID = {msg.id}", 1)
            self.w(f"NAME = {msg.name!r}", 1)
        if dec:
            self.w(f"cdef unsigned char _blk[{max(block, 1)}]", 1)
        for c in comps:
            self.w(f"cdef {self.cls(c.t)} _c_{c.py}", 1)
        texts = [sl for sl in slots if dec and isinstance(sl.t, ir.EncodedType) and sl.t.primitive == "char"
                 and sl.t.length > 1 and sl.presence != "constant"]
        # A decoder's numeric fields and char arrays are converted once, when wrap()/next() copies the block, into
        # object slots read through member descriptors (tl_expose): a read is then a load, not a property call.
        plain = [sl for sl in slots if dec and gen_base.is_plain(sl)]
        self._plain = plain
        for sl in plain:
            self.w(f"cdef PyObject* _m_{sl.py}", 1)
        # A decoder's composite fields likewise: the slot points at the composite's view (or None when the field is
        # newer than the acting version), a borrowed reference (``_c_<name>`` owns the view; the view's _owner
        # refers back to the decoder, a cycle the collector sees only through typed fields).
        views = [sl for sl in comps if dec and sl.presence != "constant"]
        self._views_exposed = views
        self._loads = bool(plain or views)
        for sl in views:
            self.w(f"cdef PyObject* _m_{sl.py}", 1)
        for sl in texts:
            self.w(f"cdef unsigned char _sc_{sl.py}[{sl.t.size}]", 1)
            self.w(f"cdef object _ss_{sl.py}", 1)
        for g in groups:
            self.w(f"cdef {base + naming.pascal(g.name) + role} _g_{gen_base.py_name(g)}", 1)
        self.w()
        self.w("def __cinit__(self):", 1)
        self.w("self._buf = _EMPTY", 2)
        self.w(f"self._acting_version = {self.s.version}", 2)
        self.w(f"self._acting_block_length = {block}", 2)
        self.w(f"self._block_length = {block}", 2)
        if dec:
            self.w(f"memset(self._blk, 0, {max(block, 1)})", 2)
            self.w("self._ptr = self._blk", 2)
        if msg is not None and dec and gen_base.has_empty(groups):
            self.w("self._empty_left = _rt.MAX_EMPTY_ENTRIES", 2)
        for c in comps:
            self.w(f"self._c_{c.py} = {self.cls(c.t)}()", 2)
            if dec:
                self.w(f"self._c_{c.py}._ptr = self._blk + {c.offset}", 2)
                self.w(f"self._c_{c.py}._owner = self", 2)
        for g in groups:
            self.w(f"self._g_{gen_base.py_name(g)} = {base + naming.pascal(g.name) + role}()", 2)
        for sl in plain:
            self.w(f"_setm(&self._m_{sl.py}, None)", 2)
        for sl in views:
            self.w(f"self._m_{sl.py} = <PyObject*>self._c_{sl.py}", 2)
        self.w()
        if plain or views:
            self.w("def __dealloc__(self):", 1)
            for sl in plain:
                self.w(f"Py_XDECREF(self._m_{sl.py})", 2)
                self.w(f"self._m_{sl.py} = NULL", 2)
            for sl in views:
                self.w(f"self._m_{sl.py} = NULL", 2)
            self.w()
            self.w("cdef int _load(self) except -1:", 1)
            self.w('"""Convert the plain fields of the block copy into their slots, point the composites at their views."""', 2)
            self.w("cdef const unsigned char* p = self._blk", 2)
            for sl in views:
                self.w(f"self._c_{sl.py}._acting_version = self._acting_version", 2)
                if sl.since:
                    self.w(f"self._m_{sl.py} = <PyObject*>None if self._acting_version < {sl.since} else <PyObject*>self._c_{sl.py}", 2)
            for sl in plain:
                t = sl.t
                assert isinstance(t, ir.EncodedType)
                if t.primitive == "char":
                    expr = f"self._text_{sl.py}()"
                else:
                    et = ir.EncodedType(t.name, t.primitive, 1, sl.presence, t.null_value)
                    expr = self._column_read(sl.offset, et).replace("(q + ", "(p + ")
                if sl.since:
                    expr = f"None if self._acting_version < {sl.since} else {expr}"
                self.w(f"_setm(&self._m_{sl.py}, {expr})", 2)
            self.w("return 0", 2)
            self.w()
            self.exposures.append((name, [sl.py for sl in plain + views]))
        self.w("@property", 1)
        self.w("def check_order(self):", 1)
        self.w('"""Whether access order is checked (module-wide in compiled codecs: set_check_order())."""', 2)
        self.w("return _CHECK_ORDER", 2)
        self.w()
        self.block_body(name, base, label, dec, slots, groups, data, msg, group)

    def own_accessor(self, sl: Slot) -> bool:
        # A decoder's plain fields and composites are member descriptors filled by _load(); a char array's text
        # is read for _load() by a C method of its own.
        if sl in self._plain:
            if isinstance(sl.t, ir.EncodedType) and sl.t.primitive == "char":
                self.w(f"cdef object _text_{sl.py}(self):", 1)
                for line in self.getter_expr_lines(sl, False):
                    self.w(line, 2)
                self.w()
            return True
        return sl in self._views_exposed

    def unpack_method(self, leaves: list[Leaf]) -> None:
        """unpack(): plain fields from their slots (converted at wrap()/next()), every other value read from the
        block copy by a C method of its own, whose body is the getter's; one tuple built in C."""
        exprs = []
        plain = {sl.py for sl in self._plain}
        for k, lf in enumerate(leaves):
            if len(lf.path) == 1 and lf.path[0] in plain:
                exprs.append(f"<object>self._m_{lf.path[0]}")
                continue
            self.w(f"cdef object _u{k}(self):", 1)
            self._text_cache = False  # a composite's char array has no per-field cache
            try:
                for line in self.getter_expr_lines(lf.slot, True):
                    self.w(line, 2)
            finally:
                self._text_cache = True
            self.w()
            exprs.append(f"self._u{k}()")
        self.w("def unpack(self):", 1)
        self.w(self.UNPACK_DOC, 2)
        self.w(f"return ({''.join(e + ', ' for e in exprs)})", 2)
        self.w()

    def pack_method(self, name: str, leaves: list[Leaf], block: int) -> None:
        """pack(): every value converted to C first (a refused value writes nothing), then one buffer access."""
        self.w(f"def pack(self{''.join(f', v{k}' for k in range(len(leaves)))}):", 1)
        self.w(self.PACK_DOC, 2)
        if block == 0:
            self.w("return self", 2)
            self.w()
            return
        self.w("cdef Py_buffer b", 2)
        self.w("cdef unsigned char* p", 2)
        if any(isinstance(lf.slot.t, ir.EncodedType) and lf.slot.t.length > 1 for lf in leaves):
            self.w("cdef Py_ssize_t i", 2)
        writes: list[str] = []
        for k, lf in enumerate(leaves):
            t, v, off = lf.slot.t, f"v{k}", lf.slot.offset
            assert not isinstance(t, ir.CompositeType)  # leaves are the members composites are walked down to
            short, ctype = _cname(t.primitive)
            if isinstance(t, (ir.EnumType, ir.SetType)):
                val = f"int({v})" if isinstance(t, ir.SetType) else f"{t.null_value} if {v} is None else int({v})"
                self.w(f"cdef {ctype} c{k} = {self._convert(t.primitive, val)}", 2)
                writes.append(f"tl_p_{short}(p + {off}, c{k})")
                continue
            assert isinstance(t, ir.EncodedType)
            if t.primitive == "char" and t.length > 1:
                for line in self.text_bytes_lines(t, lf.slot.json, v, f"r{k}"):
                    self.w(line, 2)
                writes.append(f"memcpy(p + {off}, PyBytes_AS_STRING(r{k}), PyBytes_GET_SIZE(r{k}))")
            elif t.length > 1:
                src = f"_rt.array_put({v}, {self.null_literal(t.null)})" if lf.slot.presence == "optional" else f"tuple({v})"
                self.w(f"cdef {ctype} c{k}[{t.length}]", 2)
                self.w(f"a{k} = {src}", 2)
                self.array_length_check(k, t, lf.slot.json)
                self.w(f"for i in range({t.length}):", 2)
                self.w(f"c{k}[i] = {self._convert(t.primitive, f'a{k}[i]')}", 3)
                writes.append(f"for i in range({t.length}):")
                writes.append(f"    tl_p_{short}(p + {off} + i * {t.primitive_size}, c{k}[i])")
            else:
                val = f"ord({v})" if t.primitive == "char" else v
                if lf.slot.presence == "optional":
                    val = self.or_null(t, v, val)
                self.w(f"cdef {ctype} c{k} = {self._convert(t.primitive, val)}", 2)
                writes.append(f"tl_p_{short}(p + {off}, c{k})")
        # As the Python codecs' pack(): the length first (a committed claim has none: MessageError), then writability.
        self.w("if self._offset > (<Py_ssize_t>1 << 62):", 2)
        self.w('raise MessageError(f"offset={self._offset} is out of range")', 3)
        self.w(f"p = _rw(self._buf, &b, self._offset, {block}, 'block')", 2)
        self.w(f"memset(p, 0, {block})", 2)
        for line in writes:
            self.w(line, 2)
        self.w("PyBuffer_Release(&b)", 2)
        self.w("return self", 2)
        self.w()

    def _copy_block(self, src: str, length: str, block: int, ind: int) -> None:
        """Statements copying ``length`` bytes at ``src`` into the decoder's block, zero-padded to ``block``."""
        if block == 0:
            return
        self.w(f"if {length} >= {block}:", ind)
        self.w(f"memcpy(self._blk, {src}, {block})", ind + 1)
        self.w("else:", ind)
        self.w(f"memcpy(self._blk, {src}, {length})", ind + 1)
        self.w(f"memset(self._blk + {length}, 0, {block} - {length})", ind + 1)

    def message_methods(self, name: str, dec: bool, msg: ir.Message) -> None:
        bl = msg.block_length
        if dec:
            self.w(f"def wrap(self, buf, Py_ssize_t offset, Py_ssize_t acting_block_length={bl}, "
                   f"long long acting_version={self.s.version}):", 1)
            self.doc("wrap_decoder")
            self.w("cdef Py_buffer b", 2)
            self.w("cdef const unsigned char* p", 2)
            need = gen_base.piecewise(ir.block_needs(msg.fields), "acting_version")
            if need != "0":
                self.w(f"if acting_block_length < {need}:", 2)
                self.w(f"raise _rt.short_block({'message=' + msg.name!r}, offset, acting_block_length, acting_version, {need})", 3)
            self.w("if acting_block_length < 0:", 2)
            self.w('raise MessageError(f"blockLength={acting_block_length} is negative (fault=user)")', 3)
            self.w("p = _ro(buf, &b, offset, acting_block_length, 'root block')", 2)
            self._copy_block("p", "acting_block_length", bl, 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.assign_lines(["buf", "offset", "acting_block_length", "acting_version"])
            self.w("self._limit = offset + acting_block_length", 2)
            if self._loads:
                self.w("self._load()", 2)
            if gen_base.has_empty(msg.groups):
                self.w("self._empty_left = _rt.MAX_EMPTY_ENTRIES", 2)
            self.restart_lines()
            self.decoder_tail(name)
        else:
            self.w("def wrap(self, buf, Py_ssize_t offset):", 1)
            self.doc("wrap_encoder")
            self.w("cdef Py_buffer b", 2)
            self.w(f"cdef unsigned char* p = _rw(buf, &b, offset, {bl}, 'root block')", 2)
            self.w(f"memset(p, 0, {bl})", 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.assign_lines(["buf", "offset"])
            self.w(f"self._limit = offset + {bl}", 2)
            self.restart_lines()
            hb = self.header_bytes(msg)
            self.w("def wrap_and_apply_header(self, buf, Py_ssize_t offset=0):", 1)
            self.doc("wrap_and_apply_header")
            self.w("cdef Py_buffer b", 2)
            self.w(f"cdef unsigned char* p = _rw(buf, &b, offset, {len(hb)}, 'header and root block')", 2)
            self.w(f"memcpy(p, <const char*>{hb!r}, {len(hb)})", 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.w("self._buf = buf", 2)
            self.w(f"self._offset = offset + {self.s.header.size}", 2)
            self.w(f"self._limit = offset + {len(hb)}", 2)
            self.restart_lines()
            self.from_dict_method("enc.encoded_length + HEADER_LENGTH")
        self.position_methods()

    def group_methods(self, name: str, dec: bool, g: ir.Group, elems: list[tuple[str, Any]]) -> None:
        bl = g.block_length
        self.w("cdef _wrap(self, _Flyweight msg, Py_ssize_t count, Py_ssize_t block_length, long long acting_version):", 1)
        self.group_wrap_body()
        self.w("cdef _next(self):", 1)
        self.w("cdef Py_buffer b", 2)
        self.w("cdef const unsigned char* p", 2)
        self.next_checks(g, elems)
        self.w("cdef _Flyweight msg = self._msg", 2)
        if dec:
            self.w("p = _ro(self._buf, &b, msg._limit, self._block_length, 'group entry')", 2)
            self._copy_block("p", "self._block_length", bl, 2)
            self.w("PyBuffer_Release(&b)", 2)
            if self._loads:
                self.w("self._load()", 2)
        else:
            self.w(f"cdef unsigned char* q = _rw(self._buf, &b, msg._limit, {bl}, 'group entry')", 2)
            if bl:
                self.w(f"memset(q, 0, {bl})", 2)
            self.w("PyBuffer_Release(&b)", 2)
        self.w("self._offset = msg._limit", 2)
        self.w("msg._limit += self._block_length", 2)
        self.next_tail()
        self.w("def next(self):", 1)
        self.doc("next")
        self.w("return self._next()", 2)
        self.w()
        if dec:
            self.w("def __iter__(self):", 1)
            self.w("return self", 2)
            self.w()
            self.w("def __next__(self):", 1)
            self.w("if self._index >= self._count:", 2)
            self.w("raise StopIteration", 3)
            self.w("return self._next()", 2)
            self.w()
            self.len_method()
        cols = gen_base.row_columns(g)
        if cols is not None:
            self.rows_methods(g, dec, cols)

    def _column_read(self, off: int, t: ir.EncodedType) -> str:
        short = _cname(t.primitive)[0]
        get = f"tl_g_{short}(q + {off})"
        if t.presence != "optional":
            return get
        null = t.null
        if ir.is_float(t.primitive):
            if null != null:
                return f"(None if {get} != {get} else {get})"
            return f"(None if {get} == {null!r} else {get})"
        bits = 8 * t.primitive_size
        raw = f"tl_g_u{bits}(q + {off})"
        return f"(None if {raw} == {hex(int(null) & ((1 << bits) - 1))}U else {get})"

    def rows_methods(self, g: ir.Group, dec: bool, cols: list[tuple[str, int, ir.EncodedType]]) -> None:
        """rows() / put_rows(): a flat group's entries as tuples, in one call (see gen_base.row_columns)."""
        bl = g.block_length
        paths = ", ".join(c[0] for c in cols)
        if dec:
            self.w("def rows(self):", 1)
            self.w(f'"""The remaining entries, each a tuple of ({paths}) (None for a null)."""', 2)
            self.w("cdef Py_buffer b", 2)
            self.w("cdef const unsigned char* p", 2)
            self.w("cdef const unsigned char* q", 2)
            self.w("cdef Py_ssize_t i, n = self._count - self._index", 2)
            self.w("cdef _Flyweight msg = self._msg", 2)
            self.w(f"if n <= 0 or self._block_length < {bl}:  # an older, shorter entry: field by field", 2)
            self.w(f"return [({''.join(f'e.{c[0]}, ' for c in cols)}) for e in self]", 3)
            # n <= count, and count * entry <= the bytes present was checked when the group was opened.
            self.w("p = _ro(self._buf, &b, msg._limit, n * self._block_length, 'group entries', True)", 2)
            self.w("out = [None] * n", 2)
            self.w("for i in range(n):", 2)
            self.w("q = p + i * self._block_length", 3)
            self.w(f"out[i] = ({''.join(self._column_read(off, t) + ', ' for _, off, t in cols)})", 3)
            self.w("PyBuffer_Release(&b)", 2)
            self.w("self._offset = msg._limit + (n - 1) * self._block_length", 2)
            self.w("msg._limit += n * self._block_length", 2)
            self.w("self._index = self._count", 2)
            self.w("self._step = 0", 2)
            self.w("self._open = None", 2)
            self.w("return out", 2)
            self.w()
            return
        self.w("def put_rows(self, rows):", 1)
        self.w(f'"""Write one entry per tuple of ({paths}) (None for a null), as next() and assignments."""', 2)
        self.w("cdef Py_buffer b", 2)
        self.w("cdef unsigned char* p", 2)
        self.w("cdef unsigned char* q", 2)
        self.w("cdef Py_ssize_t i, n", 2)
        self.w("cdef _Flyweight msg = self._msg", 2)
        self.w("rows = rows if type(rows) is list or type(rows) is tuple else list(rows)", 2)
        self.w("n = len(rows)", 2)
        self.w("if n == 0:", 2)
        self.w("return", 3)
        self.w("if n > self._count - self._index:", 2)
        self.w(f'raise MessageError(f"group {g.name}: no more entries (count={{self._count}})")', 3)
        self.w(f"p = _rw(self._buf, &b, msg._limit, n * {bl}, 'group entries', True, True)", 2)
        self.w("try:", 2)
        self.w("for i in range(n):", 3)
        self.w(f"q = p + i * {bl}", 4)
        names = [f"v{k}" for k in range(len(cols))]
        self.w(f"{', '.join(names)}, = rows[i]", 4)
        if bl:
            self.w(f"memset(q, 0, {bl})", 4)
        for name, (_, off, t) in zip(names, cols):
            short = _cname(t.primitive)[0]
            val = name
            if t.presence == "optional":
                val = f"{self.null_literal(t.null)} if {name} is None else {name}"
            self.w(f"tl_p_{short}(q + {off}, {self._convert(t.primitive, val)})", 4)
        self.w("finally:", 2)
        self.w("PyBuffer_Release(&b)", 3)
        self.w(f"self._offset = msg._limit + (n - 1) * {bl}", 2)
        self.w(f"msg._limit += n * {bl}", 2)
        self.w("self._index += n", 2)
        self.w("self._step = 0", 2)
        self.w("self._open = None", 2)
        self.w()

    def group_accessor(self, base: str, label: str, dec: bool, i: int, g: ir.Group,
                       elems: list[tuple[str, Any]]) -> None:
        py = gen_base.py_name(g)
        dim = g.dimension
        bl, n = self.group_dimensions(g)
        assert isinstance(bl.type, ir.EncodedType) and isinstance(n.type, ir.EncodedType)  # for mypy
        if dec:
            self.w(f"def {py}(self):", 1)
            self.group_doc(g, dec)
            self.w("cdef Py_buffer b", 2)
            self.w("cdef const unsigned char* p", 2)
            self.w("cdef Py_ssize_t block_length, entry, room", 2)
            self.w("cdef uint64_t count", 2)
            self._order_check(i, g.name, elems, g.name)
            self.enter_group(i)
            self.older_than_group(g, f"self._g_{py}")
            self.w(f"p = _ro(self._buf, &b, msg._limit, {dim.size}, 'group {g.name} dimensions')", 2)
            self.w(f"block_length = tl_g_{_cname(bl.type.primitive)[0]}(p + {bl.offset})", 2)
            self.w(f"count = tl_g_{_cname(n.type.primitive)[0]}(p + {n.offset})", 2)
            self.w(f"room = b.len - msg._limit - {dim.size}", 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.w(f"msg._limit += {dim.size}", 2)
            self.group_entry_checks(label, g)
            what = f"{label}.{g.name}"
            # count * entry could overflow: compare by division (entry > 0), bounded by the bytes present.
            self.w("if entry > 0 and count > <uint64_t>(room // entry):", 2)
            self.w(f"raise _rt.count_too_large({what!r}, msg._limit, count, entry, room)", 3)
            if gen_base.may_be_empty(g):
                self.w("if entry == 0:", 2)
                self.w("if count > <uint64_t>msg._empty_left:", 3)
                self.w(f"raise _rt.too_many_empty({what!r}, msg._limit, count)", 4)
                self.w("msg._empty_left -= <Py_ssize_t>count", 3)
            self.open_group(f"self._g_{py}", "<Py_ssize_t>count", "block_length", "self._acting_version")
            self.w()
        else:
            cshort = _cname(n.type.primitive)[0]
            self.w(f"def {py}_count(self, count):", 1)
            self.group_doc(g, dec)
            self.w("cdef Py_buffer b", 2)
            self._order_check(i, g.name, elems, g.name)
            self.w(f"cdef uint64_t c = {self._convert(n.type.primitive, 'count')}", 2)
            self.enter_group(i)
            self.w(f"cdef unsigned char* p = _rw(self._buf, &b, msg._limit, {dim.size}, 'block')", 2)
            self.w(f"memset(p, 0, {dim.size})", 2)
            self.w(f"tl_p_{_cname(bl.type.primitive)[0]}(p + {bl.offset}, {g.block_length})", 2)
            self.w(f"tl_p_{cshort}(p + {n.offset}, c)", 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.w(f"msg._limit += {dim.size}", 2)
            self.open_group(f"self._g_{py}", "<Py_ssize_t>c", str(g.block_length), str(self.s.version))
            self.w()

    def data_accessor(self, dec: bool, i: int, d: ir.VarData, elems: list[tuple[str, Any]]) -> None:
        py = gen_base.py_name(d)
        lt = d.length_type
        short = _cname(lt.primitive)[0]
        size = lt.primitive_size
        enc = py_encoding(d.data_type.character_encoding) if d.data_type.character_encoding else None
        if dec:
            fast = {"utf-8": "PyUnicode_DecodeUTF8", "ascii": "PyUnicode_DecodeASCII", "latin-1": "PyUnicode_DecodeLatin1"}
            decoder = fast.get(enc or "", "")
            self.w(f"cdef object _{py}_read(self, bint text):", 1)
            self.w('"""The var data\'s bytes, or (``text``) its text decoded straight from the buffer, in schema order."""', 2)
            self.w("cdef Py_buffer b", 2)
            self.w("cdef const unsigned char* p", 2)
            self.w("cdef uint64_t n", 2)
            self.w("cdef Py_ssize_t start, room", 2)
            self._order_check(i, d.name, elems, d.name)
            self.data_visit(i)
            if d.since_version:
                self.w(f"if self._acting_version < {d.since_version}:", 2)
                self.w('return "" if text else b""' if decoder else 'return b""', 3)
            self.msg_decl()
            # A decode error builds an exception (Python objects) while the bytes are read: the buffer is pinned then.
            pinned = "text" if decoder else "False"
            self.w(f"p = _ro(self._buf, &b, msg._limit, {size}, 'var data {d.name} length', {pinned})", 2)
            self.w(f"n = tl_g_{short}(p)", 2)
            self.w(f"start = msg._limit + {size}", 2)
            self.w(f"room = b.len - start", 2)
            self.w("if n > <uint64_t>room:", 2)
            self.w("PyBuffer_Release(&b)", 3)
            self.w("msg._limit = start", 3)
            self.w('raise MessageError(f"buffer too small: var data needs {<object>start + n} bytes, buffer length={start + room}")', 3)
            self.w("msg._limit = start + <Py_ssize_t>n", 2)
            if decoder:
                self.w("try:", 2)
                self.w(f"return {decoder}(<const char*>p + {size}, <Py_ssize_t>n, NULL) if text else "
                       f"PyBytes_FromStringAndSize(<const char*>p + {size}, <Py_ssize_t>n)", 3)
                self.w("finally:", 2)
                self.w("PyBuffer_Release(&b)", 3)
            else:
                self.w(f"v = PyBytes_FromStringAndSize(<const char*>p + {size}, <Py_ssize_t>n)", 2)
                self.w("PyBuffer_Release(&b)", 2)
                self.w("return v", 2)
            self.w()
            self.w(f"def _{py}_bytes(self):", 1)
            self.w(f"return self._{py}_read(False)", 2)
            self.w()
            self.w(f"def {py}(self):", 1)
            self.data_doc(d, dec)
            if decoder:
                self.w(f"return self._{py}_read(True)", 2)
            elif enc:
                self.w(f"return self._{py}_read(False).decode({enc!r})", 2)
            else:
                self.w(f"return self._{py}_read(False)", 2)
            self.w()
        else:
            limit = gen_base.int_max(lt)
            self.w(f"def put_{py}(self, value):", 1)
            self.data_doc(d, dec)
            self.w("cdef Py_buffer b", 2)
            self.w("cdef unsigned char* p", 2)
            self.w("cdef Py_ssize_t n", 2)
            self._order_check(i, d.name, elems, d.name)
            self.w(f"raw = value.encode({(enc or 'utf-8')!r}) if isinstance(value, str) else bytes(value)", 2)
            self.w("n = len(raw)", 2)
            self.w(f"if n > {limit}:", 2)
            self.w(f'raise MessageError(f"var data {d.name}: length={{n}} > max={limit}")', 3)
            self.data_visit(i)
            self.msg_decl()
            self.w(f"p = _rw(self._buf, &b, msg._limit, {size} + n, 'var data {d.name}')", 2)
            self.w(f"tl_p_{short}(p, n)", 2)
            self.w(f"memcpy(p + {size}, PyBytes_AS_STRING(raw), n)", 2)
            self.w("PyBuffer_Release(&b)", 2)
            self.w(f"msg._limit += {size} + n", 2)
            self.w()

    def _header_read(self, member: str, var: str) -> None:
        m = self.s.header.member(member)
        const = self.s.header_constant(member)
        if const is not None:
            self.w(f"{var} = {int(const)}", 1)
            return
        assert m is not None and isinstance(m.type, ir.EncodedType)
        self.w(f"{var} = tl_g_{_cname(m.type.primitive)[0]}(p + {m.offset})", 1)

    def dispatch(self) -> None:
        for cls, names in self.exposures:
            self.w()
            self.w()
            self.w(f"cdef _expose_{cls}():")
            self.w(f"cdef {cls} o = {cls}.__new__({cls})", 1)
            for n in names:
                self.w(f"tl_expose(<PyTypeObject*>{cls}, {n.encode()!r}, <char*>&o._m_{n} - <char*><PyObject*>o)", 1)
            self.w()
            self.w()
            self.w(f"_expose_{cls}()")
        self.w()
        self.w()
        self.decoder_maps(annotate=False)
        self.w()
        self.w()
        self.w("def decode(buf, Py_ssize_t offset=0):")
        self.doc("decode", 1)
        self.w("cdef Py_buffer b", 1)
        self.w("cdef Py_ssize_t n, block_length", 1)
        self.w("cdef long long template_id, schema_id, version", 1)
        self.w(f"cdef const unsigned char* p = _ro(buf, &b, offset, {self.s.header.size}, 'message header')", 1)
        self._header_read("blockLength", "block_length")
        self._header_read("templateId", "template_id")
        self._header_read("schemaId", "schema_id")
        if self.s.header.member("version") is not None:
            self._header_read("version", "version")
        else:
            self.w("version = SCHEMA_VERSION", 1)
        self.w("n = b.len", 1)
        self.w("PyBuffer_Release(&b)", 1)
        if self.s.header_constant("schemaId") is None:
            self.w(f"if schema_id != {self.s.id}:", 1)
            self.w(f'raise MessageError(f"message has schemaId={{schema_id}}, this module decodes schema id={self.s.id}")', 2)
        self.w("cls = DECODERS.get(template_id)", 1)
        self.w("if cls is None:", 1)
        self.w(f'raise MessageError(f"unknown templateId={{template_id}} for schema id={self.s.id}")', 2)
        hl = self.s.header.size
        self.w(f"if block_length > n - offset - {hl}:", 1)
        self.w(f'raise MessageError(f"buffer too small: root block needs {{offset + {hl} + block_length}} bytes, buffer length={{n}}")', 2)
        self.w(f"return cls().wrap(buf, offset + {hl}, block_length, version)", 1)
        self.module_function("set_strict_enums(enabled)", [self.STRICT_ENUMS_DOC[0], self.STRICT_ENUMS_DOC[1] + ")."],
                             ["global _STRICT_ENUMS", "_STRICT_ENUMS = bool(enabled)"])
        self.module_function("set_check_order(enabled)",
                             ["Turn access-order checks of every class of this module on or off (off is faster)."],
                             ["global _CHECK_ORDER", "_CHECK_ORDER = bool(enabled)"])


def generate(schema: ir.Schema, source: str = "?") -> str:
    """The Cython (.pyx) source of the compiled codecs for ``schema``; its last line names the hash of the rest
    (``SOURCE_SHA256``), so that a built module can be told apart from what the generator writes today."""
    body = _CyGen(schema, source).module()
    return body + f'\n\nSOURCE_SHA256 = "{hashlib.sha256(body.encode()).hexdigest()}"\n'


def _sha_line(source: str) -> str:
    return source.rstrip("\n").rsplit("\n", 1)[-1].split('"')[1]


# -- building -----------------------------------------------------------------------------------------

#: C compiler flags for built modules (``TICKLINE_CYTHON_OPT``: -O0 for quick test builds; the sanitizer run uses
#: "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined").
DEFAULT_OPT = "-O2"


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def build(source: str, module_name: str, outdir: str | os.PathLike[str], opt: str | None = None) -> Path:
    """Compile ``source`` (from :func:`generate`) into ``outdir/<module_name><EXT_SUFFIX>`` and return its path.

    Cython translates the .pyx to C; the machine's C compiler (``$CC`` or the one Python was built with)
    builds the extension with Python's include directory.  Raises ``RuntimeError`` naming the step that
    failed, with its output."""
    opt = opt or os.environ.get("TICKLINE_CYTHON_OPT") or DEFAULT_OPT
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = out / f"{module_name}{suffix}"
    with tempfile.TemporaryDirectory(prefix="tickline-cython-") as work:
        c_file = Path(work) / f"{module_name}.c"
        to_c(source, module_name, c_file)
        tmp_target = Path(work) / target.name
        cmd = _compiler() + ["-shared", "-fPIC", *opt.split(), "-fno-strict-aliasing", "-w",
                             f"-I{sysconfig.get_paths()['include']}", str(c_file), "-o", str(tmp_target)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"C compiler failed (command={' '.join(cmd[:1])}) on module={module_name} fault=ours:\n"
                               f"{proc.stderr[-4000:]}")
        os.replace(tmp_target, target)  # atomic: a concurrent importer sees the old file or the new one
    return target


def to_c(source: str, module_name: str, c_file: str | os.PathLike[str]) -> None:
    """Translate the generated .pyx ``source`` into the C file of extension module ``module_name``."""
    try:
        cython_main: Any = importlib.import_module("Cython.Compiler.Main")  # untyped
    except ImportError:
        raise RuntimeError(f"compiled codecs need Cython: pip install '{CYTHON_REQUIREMENT}' "
                           "(or tickline[cython]) fault=user") from None
    c_path = Path(c_file)
    with tempfile.TemporaryDirectory(prefix="tickline-cython-") as work:
        pyx = Path(work) / f"{module_name}.pyx"
        pyx.write_text(source, encoding="utf-8")
        options = cython_main.CompilationOptions(cython_main.default_options, output_file=str(c_path), language_level=3)
        result = cython_main.compile(str(pyx), options)
        if result.num_errors or not c_path.exists():
            raise RuntimeError(f"cython failed on the generated module={module_name} fault=ours")


def cache_dir() -> Path:
    """Where :func:`load_module` keeps built modules (``TICKLINE_CYTHON_CACHE``, else ~/.cache/tickline/cython)."""
    env = os.environ.get("TICKLINE_CYTHON_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tickline" / "cython"


def _import_extension(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_module(schema: ir.Schema, source: str = "?", opt: str | None = None,
                directory: str | os.PathLike[str] | None = None) -> Any:
    """Generate, build (once per distinct source: cached by content hash) and import the compiled codecs."""
    cython_version = getattr(importlib.import_module("Cython"), "__version__", "?")
    code = generate(schema, source)
    opt = opt or os.environ.get("TICKLINE_CYTHON_OPT") or DEFAULT_OPT
    key = hashlib.sha256(f"{cython_version}\0{opt}\0{sys.version}\0{code}".encode()).hexdigest()[:20]
    name = f"tl_cy_{key}"
    if name in sys.modules:
        return sys.modules[name]
    out = Path(directory) if directory is not None else cache_dir()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = out / f"{name}{suffix}"
    if not path.exists():
        build(code, name, out, opt)
    return _import_extension(name, path)


#: tickline's own schemas, compiled by the project's build (CMakeLists.txt) into tickline.codecs._cy_<name>.
BUILTIN = ("market_data", "orders", "cluster")


def load_builtin_compiled(name: str) -> Any:
    """The compiled codecs of one of tickline's own schemas (``"market_data.xml"``): the module the build
    made (``make install``), else (none, or one from another version of this generator) one built now into
    :func:`cache_dir`."""
    from tickline.codecs.schema import load_builtin

    stem = name.removesuffix(".xml")
    schema = load_builtin(f"{stem}.xml")
    try:
        module = importlib.import_module(f"tickline.codecs._cy_{stem}")
    except ImportError:
        module = None
    # A module built from an older generator (an editable install not rebuilt since) is not used.
    if module is not None and getattr(module, "SOURCE_SHA256", None) == _sha_line(generate(schema, f"{stem}.xml")):
        return module
    return load_module(schema, f"{stem}.xml")


def main(argv: list[str] | None = None) -> int:
    """``python -m tickline.codecs.gen_cython SCHEMA.xml MODULE OUT.c``: the build's step for tickline's schemas."""
    from tickline.codecs.schema import load_schema

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m tickline.codecs.gen_cython SCHEMA.xml MODULE OUT.c", file=sys.stderr)
        return 2
    schema_path, module, c_file = args
    to_c(generate(load_schema(schema_path), os.path.basename(schema_path)), module, c_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
