// Text helpers shared by the FIX fast paths (fixcodec.cpp, fixbridge.cpp):
// decimal integers, Latin-1 strings and the 8/9/.../10 frame around a body.
// Each "append" answers false for a value the Python reference code must
// format (the caller then returns None); none of them sets a Python error.
#pragma once

#include <Python.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace tickline::fixtext {

inline void append_u64(std::string &out, std::uint64_t v) {
    char buf[20];
    char *end = buf + sizeof buf, *p = end;
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out.append(p, static_cast<size_t>(end - p));
}

inline void append_i64(std::string &out, std::int64_t v) {
    if (v < 0) {
        out.push_back('-');
        append_u64(out, 0 - static_cast<std::uint64_t>(v));
    } else {
        append_u64(out, static_cast<std::uint64_t>(v));
    }
}

// An int that fits 64 bits, as str(int) writes it.
inline bool append_pylong(std::string &out, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0 || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    append_i64(out, x);
    return true;
}

// A str whose characters are all Latin-1 (what str.encode("latin-1") takes).
inline bool append_latin1(std::string &out, PyObject *s) {
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) != 0 || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
    out.append(reinterpret_cast<const char *>(PyUnicode_1BYTE_DATA(s)), static_cast<size_t>(PyUnicode_GET_LENGTH(s)));
    return true;
}

// bytes "8=<begin>|9=<len(body)>|<body>10=<checksum>|" (| is SOH); nullptr with an error set on allocation failure.
inline PyObject *frame_message(const char *begin, size_t begin_len, const std::string &body) {
    char len_digits[24];
    char *end = len_digits + sizeof len_digits, *p = end;
    size_t v = body.size();
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t nlen = static_cast<size_t>(end - p);
    size_t total = 2 + begin_len + 3 + nlen + 1 + body.size() + 7;
    PyObject *out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(total));
    if (out == nullptr) return nullptr;
    char *w = PyBytes_AS_STRING(out);
    char *start = w;
    *w++ = '8';
    *w++ = '=';
    std::memcpy(w, begin, begin_len);
    w += begin_len;
    *w++ = '\x01';
    *w++ = '9';
    *w++ = '=';
    std::memcpy(w, p, nlen);
    w += nlen;
    *w++ = '\x01';
    std::memcpy(w, body.data(), body.size());
    w += body.size();
    unsigned sum = 0;
    for (const char *c = start; c < w; ++c) sum += static_cast<unsigned char>(*c);
    sum &= 0xFF;
    *w++ = '1';
    *w++ = '0';
    *w++ = '=';
    *w++ = static_cast<char>('0' + sum / 100);
    *w++ = static_cast<char>('0' + sum / 10 % 10);
    *w++ = static_cast<char>('0' + sum % 10);
    *w++ = '\x01';
    return out;
}

}  // namespace tickline::fixtext
