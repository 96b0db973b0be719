// FIX tag=value fast paths for tickline.fix_gateway.codec: framing with the
// BodyLength/CheckSum checks, splitting a frame into fields, encoding; and the
// flat-message check of tickline.fix_gateway.dictionary's validator.
//
// The Python implementation in fix_gateway/codec.py is the reference and
// keeps every error path.  These functions only take the common, well-formed
// case and answer None for anything else (incomplete, garbled, oversized,
// data fields, unusual value types), so the caller falls back to Python,
// which decides exactly as before; tests/fix_gateway/test_codec_native.py
// checks that the two agree.
//
// fix_utc_timestamp / fix_parse_utc_timestamp do the same for the session's
// UTCTimestamp formatting and parsing (fix_gateway/session.py is the reference).
//
// fix_check_flat is the same idea for dictionary validation: it answers
// "certainly valid" or "not sure", never "invalid".
//
// All are METH_FASTCALL functions (no pybind11 dispatch): they are
// called once per message and their call overhead is part of the point.
#include "tickline_aeron.h"
#include "fixtext.h"

#include <cstring>

namespace tickline {

namespace {

constexpr Py_ssize_t kMaxHeader = 40;  // codec._MAX_HEADER
constexpr int kMaxTagDigits = 9;

// codec.DATA_LENGTH_TAGS: a frame with one of these is split the slow way.
bool is_data_length_tag(long t) {
    switch (t) {
        case 90: case 93: case 95: case 212: case 348: case 350: case 352: case 354:
        case 356: case 358: case 360: case 362: case 364: case 445: case 618: case 621:
            return true;
        default:
            return false;
    }
}

// Split [p, p+n) (a frame ending in SOH) into (fields, first-occurrence index);
// nullptr with no error set when the Python parser must decide.
PyObject *split_fields(const char *p, Py_ssize_t n, PyObject **index_out) {
    if (n == 0 || p[n - 1] != '\x01') return nullptr;
    PyObject *fields = PyList_New(0);
    PyObject *index = PyDict_New();
    if (fields == nullptr || index == nullptr) {
        Py_XDECREF(fields);
        Py_XDECREF(index);
        return nullptr;
    }
    Py_ssize_t pos = 0;
    bool ok = true;
    while (pos < n) {
        long tag = 0;
        Py_ssize_t q = pos;
        while (q < n && p[q] >= '0' && p[q] <= '9' && q - pos < kMaxTagDigits + 1) {
            tag = tag * 10 + (p[q] - '0');
            ++q;
        }
        if (q == pos || q - pos > kMaxTagDigits || q >= n || p[q] != '=' || is_data_length_tag(tag)) {
            ok = false;
            break;
        }
        const char *v = p + q + 1;
        const char *soh = static_cast<const char *>(std::memchr(v, '\x01', static_cast<size_t>(p + n - v)));
        // the frame ends in SOH, so there is one
        PyObject *key = PyLong_FromLong(tag);
        PyObject *val = PyUnicode_DecodeLatin1(v, soh - v, nullptr);
        PyObject *pair = (key != nullptr && val != nullptr) ? PyTuple_Pack(2, key, val) : nullptr;
        bool added = pair != nullptr && PyList_Append(fields, pair) == 0 &&
                     PyDict_SetDefault(index, key, val) != nullptr;
        Py_XDECREF(pair);
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (!added) {
            Py_DECREF(fields);
            Py_DECREF(index);
            return nullptr;  // an error is set
        }
        pos = (soh - p) + 1;
    }
    Py_ssize_t nf = PyList_GET_SIZE(fields);
    auto tag_at = [&](Py_ssize_t i) { return PyLong_AsLong(PyTuple_GET_ITEM(PyList_GET_ITEM(fields, i), 0)); };
    if (ok && (nf < 4 || tag_at(0) != 8 || tag_at(1) != 9 || tag_at(2) != 35 || tag_at(nf - 1) != 10)) ok = false;
    if (!ok) {
        Py_DECREF(fields);
        Py_DECREF(index);
        return nullptr;
    }
    *index_out = index;
    return fields;
}

PyObject *fields_or_none(const char *p, Py_ssize_t n) {
    PyObject *index = nullptr;
    PyObject *fields = split_fields(p, n, &index);
    if (fields == nullptr) {
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    PyObject *out = PyTuple_Pack(2, fields, index);
    Py_DECREF(fields);
    Py_DECREF(index);
    return out;
}

// fix_split(frame: bytes) -> (fields, index) | None
PyObject *fix_split(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fix_split(frame: bytes)");
        return nullptr;
    }
    return fields_or_none(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]));
}

// The end of the complete, well-formed frame at buf[start:], or 0 when the
// Python framer must decide (incomplete, garbled or oversized).
Py_ssize_t frame_end(const unsigned char *b, Py_ssize_t n, Py_ssize_t start, Py_ssize_t max_size) {
    if (start < 0 || n - start < 16 || std::memcmp(b + start, "8=FIX", 5) != 0) return 0;
    Py_ssize_t lim = start + kMaxHeader < n ? start + kMaxHeader : n;
    const void *s1 = std::memchr(b + start, 1, static_cast<size_t>(lim - start));
    if (s1 == nullptr) return 0;
    Py_ssize_t soh1 = static_cast<const unsigned char *>(s1) - b;
    if (n < soh1 + 3 || b[soh1 + 1] != '9' || b[soh1 + 2] != '=') return 0;
    lim = soh1 + 3 + 12 < n ? soh1 + 3 + 12 : n;
    if (soh1 + 3 >= lim) return 0;
    const void *s2 = std::memchr(b + soh1 + 3, 1, static_cast<size_t>(lim - (soh1 + 3)));
    if (s2 == nullptr) return 0;
    Py_ssize_t soh2 = static_cast<const unsigned char *>(s2) - b;
    if (soh2 == soh1 + 3) return 0;
    long long body_len = 0;
    for (Py_ssize_t i = soh1 + 3; i < soh2; ++i) {
        if (b[i] < '0' || b[i] > '9') return 0;
        body_len = body_len * 10 + (b[i] - '0');
    }
    long long total = (soh2 + 1 - start) + body_len + 7;
    if (total > max_size) return 0;
    Py_ssize_t end_body = soh2 + 1 + static_cast<Py_ssize_t>(body_len);
    if (n < end_body + 7) return 0;
    const unsigned char *t = b + end_body;
    if (t[0] != '1' || t[1] != '0' || t[2] != '=' || t[6] != 1) return 0;
    int declared = 0;
    for (int i = 3; i < 6; ++i) {
        if (t[i] < '0' || t[i] > '9') return 0;
        declared = declared * 10 + (t[i] - '0');
    }
    unsigned sum = 0;
    for (Py_ssize_t i = start; i < end_body; ++i) sum += b[i];
    if (declared != static_cast<int>(sum & 0xFF)) return 0;
    return end_body + 7;
}

// fix_next(buf: bytearray, start: int, max_size: int) -> (end, frame, fields, index) | None
// One complete, well-formed message at buf[start:] (framing checks and the
// field split both pass), or None: then Framer.next() and parse() decide.
PyObject *fix_next(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyByteArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fix_next(buf: bytearray, start: int, max_size: int)");
        return nullptr;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_size = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return nullptr;
    const auto *b = reinterpret_cast<const unsigned char *>(PyByteArray_AS_STRING(args[0]));
    Py_ssize_t n = PyByteArray_GET_SIZE(args[0]);
    Py_ssize_t end = frame_end(b, n, start, max_size);
    if (end == 0) Py_RETURN_NONE;
    PyObject *frame = PyBytes_FromStringAndSize(reinterpret_cast<const char *>(b + start), end - start);
    if (frame == nullptr) return nullptr;
    PyObject *index = nullptr;
    PyObject *fields = split_fields(PyBytes_AS_STRING(frame), end - start, &index);
    if (fields == nullptr) {
        Py_DECREF(frame);
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    PyObject *pos = PyLong_FromSsize_t(end);
    PyObject *out = pos != nullptr ? PyTuple_Pack(4, pos, frame, fields, index) : nullptr;
    Py_XDECREF(pos);
    Py_DECREF(frame);
    Py_DECREF(fields);
    Py_DECREF(index);
    return out;
}

// fix_encode(begin_string: str, fields: list | tuple, body: bytes = b"") -> bytes | None
// Fields must be (positive int, str without SOH | int) pairs starting with tag 35; None
// otherwise (codec.encode then formats other value types and raises its errors).
// ``body`` is fields already encoded ("tag=value<SOH>..."), written after ``fields``.
PyObject *fix_encode(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 && !(nargs == 3 && PyBytes_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "fix_encode(begin_string: str, fields: list, body: bytes = b\"\")");
        return nullptr;
    }
    PyObject *seq = args[1];
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) Py_RETURN_NONE;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    if (nf == 0) Py_RETURN_NONE;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    thread_local std::string body;
    body.clear();
    for (Py_ssize_t i = 0; i < nf; ++i) {
        PyObject *it = items[i];
        if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 2) Py_RETURN_NONE;
        PyObject *tag = PyTuple_GET_ITEM(it, 0);
        PyObject *val = PyTuple_GET_ITEM(it, 1);
        size_t tag_at = body.size();
        if (!PyLong_CheckExact(tag) || !fixtext::append_pylong(body, tag)) Py_RETURN_NONE;
        if (body[tag_at] == '-' || (body[tag_at] == '0' && body.size() == tag_at + 1)) Py_RETURN_NONE;  // tag <= 0
        if (i == 0 && (body.size() != 2 || body[0] != '3' || body[1] != '5')) Py_RETURN_NONE;
        body.push_back('=');
        if (PyUnicode_CheckExact(val)) {
            if (!fixtext::append_latin1(body, val)) Py_RETURN_NONE;
        } else if (PyLong_CheckExact(val)) {
            if (!fixtext::append_pylong(body, val)) Py_RETURN_NONE;
        } else {
            Py_RETURN_NONE;
        }
        body.push_back('\x01');
    }
    if (nargs == 3) body.append(PyBytes_AS_STRING(args[2]), static_cast<size_t>(PyBytes_GET_SIZE(args[2])));
    PyObject *begin = args[0];
    if (!PyUnicode_CheckExact(begin) || PyUnicode_READY(begin) != 0 || PyUnicode_KIND(begin) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    return fixtext::frame_message(reinterpret_cast<const char *>(PyUnicode_1BYTE_DATA(begin)),
                                  static_cast<size_t>(PyUnicode_GET_LENGTH(begin)), body);
}

// fix_utc_timestamp(now: float) -> str | None
// session.utc_timestamp(now) (YYYYMMDD-HH:MM:SS.sss), or None outside 1970..9999 (Python formats those).
PyObject *fix_utc_timestamp(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "fix_utc_timestamp(now: float)");
        return nullptr;
    }
    double now;
    if (PyFloat_CheckExact(args[0])) {
        now = PyFloat_AS_DOUBLE(args[0]);
    } else if (PyLong_CheckExact(args[0])) {
        now = PyLong_AsDouble(args[0]);
        if (now == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    } else {
        Py_RETURN_NONE;
    }
    char b[fixtext::kUtcMsLen];
    if (!fixtext::format_utc_ms(now, b)) Py_RETURN_NONE;
    return PyUnicode_DecodeASCII(b, sizeof b, nullptr);
}

// fix_parse_utc_timestamp(s: str) -> float | None
// session.parse_utc_timestamp(s) for a well-formed UTCTimestamp with every field in range; None
// for anything else, malformed or not (Python decides those).
PyObject *fix_parse_utc_timestamp(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "fix_parse_utc_timestamp(s: str)");
        return nullptr;
    }
    PyObject *v = args[0];
    if (!PyUnicode_CheckExact(v) || PyUnicode_READY(v) != 0 || !PyUnicode_IS_ASCII(v)) Py_RETURN_NONE;
    double t;
    if (!fixtext::parse_utc_seconds(static_cast<const char *>(PyUnicode_DATA(v)), PyUnicode_GET_LENGTH(v), &t))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(t);
}

// Type codes of fix_check_flat's ``typed`` table (dictionary._NATIVE_TYPE_CODES).
enum TypeCode { kUint = 1, kInt = 2, kFloat = 3, kTimestamp = 4, kChar = 5, kBoolean = 6 };

bool all_digits(const Py_UCS1 *p, Py_ssize_t n) {
    if (n <= 0) return false;
    for (Py_ssize_t i = 0; i < n; ++i)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

int two(const Py_UCS1 *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

// YYYYMMDD-HH:MM:SS[.s{1,9}], the grammar of dictionary._TIMESTAMP, ASCII digits only.
bool is_timestamp(const Py_UCS1 *p, Py_ssize_t n) {
    if (n < 17 || !all_digits(p, 8) || p[8] != '-' || !all_digits(p + 9, 2) || p[11] != ':' ||
        !all_digits(p + 12, 2) || p[14] != ':' || !all_digits(p + 15, 2))
        return false;
    int mon = two(p + 4), day = two(p + 6), hh = two(p + 9), mm = two(p + 12), ss = two(p + 15);
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return false;
    if (n == 17) return true;
    return p[17] == '.' && n - 18 >= 1 && n - 18 <= 9 && all_digits(p + 18, n - 18);
}

bool type_ok(long code, PyObject *v) {
    if (PyUnicode_READY(v) != 0 || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND) return false;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(v);
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    switch (code) {
        case kUint:
            return all_digits(p, n);
        case kInt:
            return n > 0 && p[0] == '-' ? all_digits(p + 1, n - 1) : all_digits(p, n);
        case kFloat: {
            Py_ssize_t i = (n > 0 && p[0] == '-') ? 1 : 0;
            bool digits = false, dot = false;
            for (; i < n; ++i) {
                if (p[i] >= '0' && p[i] <= '9') digits = true;
                else if (p[i] == '.' && !dot) dot = true;
                else return false;
            }
            return digits;
        }
        case kTimestamp:
            return is_timestamp(p, n);
        case kChar:
            return n == 1;
        case kBoolean:
            return n == 1 && (p[0] == 'Y' || p[0] == 'N');
        default:
            return false;
    }
}

// fix_check_flat(index, nfields, allowed, required, enums, typed) -> bool
// True only when a message whose first-occurrence index is ``index`` (and
// that has ``nfields`` fields) is certainly valid: no repeated tag, every tag
// in ``allowed``, every ``required`` tag present, no empty value, each enum
// value in ``enums[tag]``, each typed value passing ``typed[tag]``'s check
// (a tuple ``required``; code 0 in ``typed``: not sure whenever the tag is there).
// False means "not sure": dictionary.Validator's walk decides.
PyObject *fix_check_flat(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyDict_Check(args[0]) || !PyAnySet_Check(args[2]) || !PyTuple_Check(args[3]) ||
        !PyDict_Check(args[4]) || !PyDict_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "fix_check_flat(index: dict, nfields: int, allowed: frozenset, "
                                         "required: tuple, enums: dict, typed: dict)");
        return nullptr;
    }
    PyObject *index = args[0], *allowed = args[2], *required = args[3], *enums = args[4], *typed = args[5];
    Py_ssize_t nfields = PyLong_AsSsize_t(args[1]);
    if (nfields == -1 && PyErr_Occurred()) return nullptr;
    if (PyDict_GET_SIZE(index) != nfields) Py_RETURN_FALSE;
    Py_ssize_t pos = 0;
    PyObject *tag, *value;
    while (PyDict_Next(index, &pos, &tag, &value)) {
        int in = PySet_Contains(allowed, tag);
        if (in < 0) return nullptr;
        if (in == 0 || !PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) == 0) Py_RETURN_FALSE;
        PyObject *ok_values = PyDict_GetItemWithError(enums, tag);
        if (ok_values != nullptr) {
            int has = PySet_Contains(ok_values, value);
            if (has < 0) return nullptr;
            if (has == 0) Py_RETURN_FALSE;
            continue;
        }
        if (PyErr_Occurred()) return nullptr;
        PyObject *code = PyDict_GetItemWithError(typed, tag);
        if (code != nullptr) {
            if (!type_ok(PyLong_AsLong(code), value)) Py_RETURN_FALSE;  // code 0: a check done only in Python
        } else if (PyErr_Occurred()) {
            return nullptr;
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(required); ++i) {
        int has = PyDict_Contains(index, PyTuple_GET_ITEM(required, i));
        if (has < 0) return nullptr;
        if (has == 0) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

PyMethodDef kMethods[] = {
    {"fix_split", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_split)), METH_FASTCALL,
     "fix_split(frame: bytes) -> (fields, index) | None: the fields of a well-formed frame, or None "
     "(tickline.fix_gateway.codec.parse decides)."},
    {"fix_next", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_next)), METH_FASTCALL,
     "fix_next(buf: bytearray, start: int, max_size: int) -> (end, frame, fields, index) | None: the complete, "
     "well-formed message at buf[start:], or None (the Python Framer decides)."},
    {"fix_encode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_encode)), METH_FASTCALL,
     "fix_encode(begin_string: str, fields: list, body: bytes = b'') -> bytes | None: a message with BodyLength "
     "and CheckSum (``body``: fields already encoded, after ``fields``), or None for input the Python encoder must handle."},
    {"fix_check_flat", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_check_flat)), METH_FASTCALL,
     "fix_check_flat(index, nfields, allowed, required, enums, typed) -> bool: True when a flat message is "
     "certainly valid, False when tickline.fix_gateway.dictionary's walk must decide."},
    {"fix_utc_timestamp", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_utc_timestamp)), METH_FASTCALL,
     "fix_utc_timestamp(now: float) -> str | None: tickline.fix_gateway.session.utc_timestamp(now), or None "
     "where the Python function must format it."},
    {"fix_parse_utc_timestamp", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_parse_utc_timestamp)),
     METH_FASTCALL,
     "fix_parse_utc_timestamp(s: str) -> float | None: tickline.fix_gateway.session.parse_utc_timestamp(s) for a "
     "well-formed timestamp, or None where the Python function must decide."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void init_fixcodec(py::module_ &m) {
    add_functions(m, kMethods);
}

}  // namespace tickline
