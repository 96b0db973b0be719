// Text helpers shared by the FIX fast paths (fixcodec.cpp, fixbridge.cpp):
// decimal integers, Latin-1 strings, the 8/9/.../10 frame around a body and
// UTCTimestamps.  Each answers false for a value the Python reference code
// must handle (the caller then returns None); none of them sets a Python error.
#pragma once

#include <Python.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
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

// A str whose characters are all Latin-1 (what str.encode("latin-1") takes) and none SOH:
// a value with SOH is field injection unless it is a data field, which the Python encoder
// decides (codec.py_encode refuses it or writes it after its length field).
inline bool append_latin1(std::string &out, PyObject *s) {
    if (!PyUnicode_Check(s) || PyUnicode_READY(s) != 0 || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return false;
    const auto *p = reinterpret_cast<const char *>(PyUnicode_1BYTE_DATA(s));
    auto n = static_cast<size_t>(PyUnicode_GET_LENGTH(s));
    if (std::memchr(p, '\x01', n) != nullptr) return false;
    out.append(p, n);
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

inline bool digits(const char *p, Py_ssize_t n) {
    if (n <= 0) return false;
    for (Py_ssize_t i = 0; i < n; ++i)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

// Python's round() of a float: half to even.
inline double round_half_even(double x) {
    double r = std::round(x);
    if (std::fabs(x - r) == 0.5) r = 2.0 * std::round(x / 2.0);
    return r;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (what calendar.timegm counts).
inline std::int64_t days_from_civil(std::int64_t y, int m, int d) {
    y -= m <= 2;
    std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    std::int64_t yoe = y - era * 400;
    std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

// session.parse_utc_timestamp(s) for YYYYMMDD-HH:MM:SS[.f{1,15}] with ASCII digits and every
// field in range (month 1-12, day 1-31, hour < 24, minute < 60, second <= 60), computed with the
// same float operations (the seconds, plus fraction / 10^k: both exact doubles, so the division
// is as correctly rounded as Python's int / int); false for anything else.
inline bool parse_utc_seconds(const char *s, Py_ssize_t n, double *out) {
    if (n < 17 || !digits(s, 8) || s[8] != '-' || !digits(s + 9, 2) || s[11] != ':' || !digits(s + 12, 2) ||
        s[14] != ':' || !digits(s + 15, 2))
        return false;
    auto two = [](const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); };
    int year = two(s) * 100 + two(s + 2), mon = two(s + 4), day = two(s + 6);
    int hh = two(s + 9), mm = two(s + 12), ss = two(s + 15);
    if (year < 1 || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return false;
    std::int64_t secs = ((days_from_civil(year, mon, 1) + day - 1) * 24 + hh) * 3600 + mm * 60 + ss;
    if (n == 17) {
        *out = static_cast<double>(secs);
        return true;
    }
    Py_ssize_t nf = n - 18;
    if (s[17] != '.' || nf < 1 || nf > 15 || !digits(s + 18, nf)) return false;
    std::int64_t frac = 0, scale = 1;
    for (Py_ssize_t i = 0; i < nf; ++i) frac = frac * 10 + (s[18 + i] - '0'), scale *= 10;
    *out = static_cast<double>(secs) + static_cast<double>(frac) / static_cast<double>(scale);
    return true;
}

constexpr int kUtcMsLen = 21;  // YYYYMMDD-HH:MM:SS.sss

// session.utc_timestamp(now) for 0 <= now before the year 10000, with the same float steps.
inline bool format_utc_ms(double now, char *b) {
    if (!(now >= 0 && now < 253402300800.0)) return false;
    auto secs = static_cast<long long>(now);
    auto ms = static_cast<long long>(round_half_even((now - static_cast<double>(secs)) * 1000));
    if (ms >= 1000) secs += 1, ms -= 1000;
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    if (gmtime_r(&t, &tm) == nullptr || tm.tm_year + 1900 > 9999) return false;
    int year = tm.tm_year + 1900;
    auto put2 = [](char *w, int x) { w[0] = static_cast<char>('0' + x / 10), w[1] = static_cast<char>('0' + x % 10); };
    put2(b, year / 100), put2(b + 2, year % 100), put2(b + 4, tm.tm_mon + 1), put2(b + 6, tm.tm_mday);
    b[8] = '-', put2(b + 9, tm.tm_hour), b[11] = ':', put2(b + 12, tm.tm_min), b[14] = ':', put2(b + 15, tm.tm_sec);
    b[17] = '.', b[18] = static_cast<char>('0' + ms / 100), b[19] = static_cast<char>('0' + ms / 10 % 10);
    b[20] = static_cast<char>('0' + ms % 10);
    return true;
}

}  // namespace tickline::fixtext
