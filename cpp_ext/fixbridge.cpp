// Fast paths for tickline.fix_gateway.bridge: a plain NewOrderSingle's tag
// index -> NewOrder, and an ExecutionReport tuple -> its encoded FIX body.
//
// Same contract as fixcodec.cpp: the Python code in fix_gateway/bridge.py is
// the reference and decides every case these functions are not sure of; they
// answer None for anything but the plain, well-formed case, never an error
// about the message.  tests/fix_gateway/test_bridge_native.py holds each one
// to the Python path on generated input.
//
// Both are METH_FASTCALL functions, called once per order or report.
#include "tickline_aeron.h"
#include "fixtext.h"

#include <cstring>

namespace tickline {

namespace {

using fixtext::append_i64;
using fixtext::append_latin1;
using fixtext::append_pylong;
using fixtext::digits;

constexpr std::int64_t kPriceScale = 1000000000;  // bridge.PRICE_SCALE

// Tag objects for the index lookups (small ints, made once).
enum TagSlot { kAccount, kClOrdId, kOrderQty, kOrdType, kPrice, kSide, kSymbol, kTimeInForce, kTransactTime,
               kStopPx, kExpireTime, kTagCount };
constexpr long kTagNumbers[kTagCount] = {1, 11, 38, 40, 44, 54, 55, 59, 60, 99, 126};
PyObject *g_tags[kTagCount];
PyObject *g_zero;  // "0": TimeInForce when 59 is absent or empty

// An ASCII str's bytes; false when ``o`` is not a str or has other characters.
bool ascii(PyObject *o, const char **p, Py_ssize_t *n) {
    if (!PyUnicode_Check(o) || PyUnicode_READY(o) != 0 || !PyUnicode_IS_ASCII(o)) return false;
    *p = static_cast<const char *>(PyUnicode_DATA(o));
    *n = PyUnicode_GET_LENGTH(o);
    return true;
}

// bridge._plain_mantissa: "-"? digits ("." 1-9 digits)? -> mantissa (10^-9) below 2^63.
bool plain_mantissa(const char *p, Py_ssize_t n, std::int64_t *out) {
    bool neg = n > 0 && p[0] == '-';
    if (neg) ++p, --n;
    Py_ssize_t dot = 0;
    while (dot < n && p[dot] != '.') ++dot;
    if (!digits(p, dot)) return false;
    Py_ssize_t nfrac = dot < n ? n - dot - 1 : 0;
    if (dot < n && (nfrac < 1 || nfrac > 9 || !digits(p + dot + 1, nfrac))) return false;
    std::uint64_t whole = 0;
    for (Py_ssize_t i = 0; i < dot; ++i) {
        whole = whole * 10 + static_cast<std::uint64_t>(p[i] - '0');
        if (whole >= 10000000000ULL) return false;  // x 10^9 would pass 2^63
    }
    std::uint64_t frac = 0;
    for (Py_ssize_t i = 0; i < 9; ++i) frac = frac * 10 + (i < nfrac ? static_cast<std::uint64_t>(p[dot + 1 + i] - '0') : 0);
    std::uint64_t m = whole * static_cast<std::uint64_t>(kPriceScale) + frac;
    if (m >= (1ULL << 63)) return false;
    *out = neg ? -static_cast<std::int64_t>(m) : static_cast<std::int64_t>(m);
    return true;
}

// int(round(session.parse_utc_timestamp(s) * 1e9)) for the timestamps fixtext::parse_utc_seconds
// takes, with at most 9 decimals (what NewOrder's TransactTime can hold); false for anything else.
bool timestamp_ns(const char *s, Py_ssize_t n, PyObject **out) {
    double t;
    if (n > 27 || !fixtext::parse_utc_seconds(s, n, &t)) return false;
    *out = PyLong_FromDouble(fixtext::round_half_even(t * 1e9));
    return true;
}

// A str value of the index, or nullptr (absent, or *err set to -1 on a lookup error).
PyObject *lookup(PyObject *idx, TagSlot slot, int *err) {
    PyObject *v = PyDict_GetItemWithError(idx, g_tags[slot]);
    if (v == nullptr && PyErr_Occurred()) *err = -1;
    return v;
}

// fix_new_order(spec, index, now) -> NewOrder | None; spec = (NewOrder, sides, ord_types, tifs,
// market, clordid_len, symbol_len, account_len) as bridge._NATIVE_NOS_SPEC has it (first, so
// that functools.partial can bind it).  The NewOrder of a plain NewOrderSingle (what
// bridge._py_new_order_fast gives), or None.
PyObject *fix_new_order(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 8 || !PyDict_Check(args[1]) ||
        !PyType_Check(PyTuple_GET_ITEM(args[0], 0)) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject *>(PyTuple_GET_ITEM(args[0], 0)), &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "fix_new_order(spec: tuple, index: dict, now: float)");
        return nullptr;
    }
    PyObject *spec = args[0], *idx = args[1];
    auto *order_type = reinterpret_cast<PyTypeObject *>(PyTuple_GET_ITEM(spec, 0));
    PyObject *sides = PyTuple_GET_ITEM(spec, 1), *ord_types = PyTuple_GET_ITEM(spec, 2);
    PyObject *tifs = PyTuple_GET_ITEM(spec, 3), *market = PyTuple_GET_ITEM(spec, 4);
    Py_ssize_t max_cl = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 5));
    Py_ssize_t max_sym = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 6));
    Py_ssize_t max_acct = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 7));
    if (PyErr_Occurred() || !PyDict_Check(sides) || !PyDict_Check(ord_types) || !PyDict_Check(tifs)) {
        PyErr_SetString(PyExc_TypeError, "fix_new_order: spec = (type, dict, dict, dict, member, int, int, int)");
        return nullptr;
    }
    int err = 0;
    PyObject *cl = lookup(idx, kClOrdId, &err), *sym = lookup(idx, kSymbol, &err);
    PyObject *acct = lookup(idx, kAccount, &err), *side_v = lookup(idx, kSide, &err);
    PyObject *type_v = lookup(idx, kOrdType, &err), *tif_v = lookup(idx, kTimeInForce, &err);
    PyObject *px_v = lookup(idx, kPrice, &err), *qty_v = lookup(idx, kOrderQty, &err);
    PyObject *tt_v = lookup(idx, kTransactTime, &err), *stop_v = lookup(idx, kStopPx, &err);
    PyObject *exp_v = lookup(idx, kExpireTime, &err);
    if (err != 0) return nullptr;
    const char *p;
    Py_ssize_t n;
    // ClOrdID and Symbol present and not empty, Account optional; all ASCII, within the schema's lengths
    if (cl == nullptr || !ascii(cl, &p, &n) || n == 0 || n > max_cl) Py_RETURN_NONE;
    if (sym == nullptr || !ascii(sym, &p, &n) || n == 0 || n > max_sym) Py_RETURN_NONE;
    if (acct != nullptr && (!ascii(acct, &p, &n) || n > max_acct)) Py_RETURN_NONE;
    // no StopPx, no ExpireTime (an empty ExpireTime is absent)
    if (stop_v != nullptr) Py_RETURN_NONE;
    if (exp_v != nullptr && (!PyUnicode_Check(exp_v) || PyUnicode_GET_LENGTH(exp_v) != 0)) Py_RETURN_NONE;
    if (side_v == nullptr || type_v == nullptr || !PyUnicode_CheckExact(side_v) || !PyUnicode_CheckExact(type_v))
        Py_RETURN_NONE;
    if (tif_v != nullptr && !PyUnicode_CheckExact(tif_v)) Py_RETURN_NONE;
    if (tif_v == nullptr || PyUnicode_GET_LENGTH(tif_v) == 0) tif_v = g_zero;
    PyObject *side = PyDict_GetItemWithError(sides, side_v);
    PyObject *ord_type = side != nullptr ? PyDict_GetItemWithError(ord_types, type_v) : nullptr;
    PyObject *tif = ord_type != nullptr ? PyDict_GetItemWithError(tifs, tif_v) : nullptr;
    if (tif == nullptr) {
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    // Price: a plain decimal; only a market order may leave it out
    PyObject *price;
    if (px_v == nullptr) {
        if (ord_type != market) Py_RETURN_NONE;
        price = Py_NewRef(Py_None);
    } else {
        std::int64_t m;
        if (!ascii(px_v, &p, &n) || !plain_mantissa(p, n, &m)) Py_RETURN_NONE;
        price = PyLong_FromLongLong(m);
        if (price == nullptr) return nullptr;
    }
    // OrderQty: digits, 0 < qty < 2^64 (fewer than 20 digits here; Python decides longer ones)
    std::uint64_t q = 0;
    if (qty_v == nullptr || !ascii(qty_v, &p, &n) || n > 19 || !digits(p, n)) {
        Py_DECREF(price);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < n; ++i) q = q * 10 + static_cast<std::uint64_t>(p[i] - '0');
    if (q == 0) {
        Py_DECREF(price);
        Py_RETURN_NONE;
    }
    // TransactTime: as sent, or now
    PyObject *tt = nullptr;
    if (tt_v == nullptr) {
        PyObject *now = args[2];
        if (!PyFloat_CheckExact(now) && !PyLong_CheckExact(now)) {
            Py_DECREF(price);
            Py_RETURN_NONE;
        }
        double t = PyFloat_AsDouble(now);  // int(now * 1e9), as Python computes it
        if (t == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_DECREF(price);
            Py_RETURN_NONE;
        }
        tt = PyLong_FromDouble(t * 1e9);
    } else if (!ascii(tt_v, &p, &n) || !timestamp_ns(p, n, &tt)) {
        Py_DECREF(price);
        Py_RETURN_NONE;
    }
    PyObject *qty = tt != nullptr ? PyLong_FromUnsignedLongLong(q) : nullptr;
    PyObject *order = qty != nullptr ? order_type->tp_alloc(order_type, 11) : nullptr;
    if (order == nullptr) {
        Py_DECREF(price);
        Py_XDECREF(tt);
        Py_XDECREF(qty);
        return nullptr;
    }
    // as tuple.__new__(NewOrder, ...) fills a tuple subclass
    PyObject *items[11] = {Py_NewRef(cl), acct != nullptr ? Py_NewRef(acct) : PyUnicode_New(0, 0), Py_NewRef(sym),
                           Py_NewRef(side), Py_NewRef(ord_type), Py_NewRef(tif), price, Py_NewRef(Py_None), qty, tt,
                           Py_NewRef(Py_None)};
    for (int i = 0; i < 11; ++i) PyTuple_SET_ITEM(order, i, items[i]);
    return order;
}

// bridge._px: a mantissa (10^-9) as FIX text without trailing zeros; None is "0".
bool append_px(std::string &out, PyObject *v) {
    if (v == Py_None) {
        out.push_back('0');
        return true;
    }
    int overflow = 0;
    long long m = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0 || (m == -1 && PyErr_Occurred()) || m == INT64_MIN) {
        PyErr_Clear();
        return false;
    }
    if (m < 0) out.push_back('-');
    std::uint64_t a = m < 0 ? static_cast<std::uint64_t>(-m) : static_cast<std::uint64_t>(m);
    fixtext::append_u64(out, a / kPriceScale);
    std::uint64_t frac = a % kPriceScale;
    if (frac != 0) {
        char f[10];
        f[0] = '.';
        for (int i = 9; i >= 1; --i, frac /= 10) f[i] = static_cast<char>('0' + frac % 10);
        int len = 10;
        while (f[len - 1] == '0') --len;
        out.append(f, static_cast<size_t>(len));
    }
    return true;
}

// session.utc_timestamp(ns / 1e9): YYYYMMDD-HH:MM:SS.sss, with the same float steps.
bool append_utc_ms(std::string &out, PyObject *v) {
    int overflow = 0;
    long long ns = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow != 0 || (ns == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    char b[fixtext::kUtcMsLen];
    if (!fixtext::format_utc_ms(static_cast<double>(ns) / 1e9, b)) return false;
    out.append(b, sizeof b);
    return true;
}

// The one character of an enum member that is a str ("F" for ExecType.TRADE), or 0.
char code_of(PyObject *member) {
    if (!PyUnicode_Check(member) || PyUnicode_READY(member) != 0 || PyUnicode_GET_LENGTH(member) != 1 ||
        PyUnicode_KIND(member) != PyUnicode_1BYTE_KIND)
        return 0;
    return static_cast<char>(PyUnicode_1BYTE_DATA(member)[0]);
}

// One "tag=value<SOH>" field; false when the value is not one this file formats.
bool int_field(std::string &b, const char *tag_eq, PyObject *v) {
    b.append(tag_eq);
    if (!PyLong_CheckExact(v) || !append_pylong(b, v)) return false;
    b.push_back('\x01');
    return true;
}

bool str_field(std::string &b, const char *tag_eq, PyObject *v) {
    b.append(tag_eq);
    if (!append_latin1(b, v)) return false;
    b.push_back('\x01');
    return true;
}

bool char_field(std::string &b, const char *tag_eq, char c) {
    b.append(tag_eq);
    b.push_back(c);
    b.push_back('\x01');
    return true;
}

bool px_field(std::string &b, const char *tag_eq, PyObject *v) {  // an int mantissa or None
    b.append(tag_eq);
    if ((v != Py_None && !PyLong_Check(v)) || !append_px(b, v)) return false;
    b.push_back('\x01');
    return true;
}

bool time_field(std::string &b, const char *tag_eq, PyObject *v) {  // ns since the epoch
    b.append(tag_eq);
    if (!PyLong_CheckExact(v) || !append_utc_ms(b, v)) return false;
    b.push_back('\x01');
    return true;
}

// fix_execution_report_body(report: ExecutionReport, fix42: bool) -> bytes | None
// The encoded body ("37=...<SOH>...", what follows the header) of the fields bridge.to_fix
// gives for ``report`` in FIX 4.2 (fix42) or 4.4 and later; None for a reject (OrdRejReason
// depends on the dictionary), an OrdStatus of Replaced, and values it does not format.
PyObject *fix_execution_report_body(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyBool_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fix_execution_report_body(report: ExecutionReport, fix42: bool)");
        return nullptr;
    }
    if (PyTuple_GET_SIZE(args[0]) != 17) Py_RETURN_NONE;
    bool v42 = args[1] == Py_True;
    // order_id exec_id cl_ord_id symbol side exec_type ord_status price last_price last_quantity
    // leaves_quantity cum_quantity avg_price transact_time reject_reason text orig_cl_ord_id
    PyObject **it = reinterpret_cast<PyTupleObject *>(args[0])->ob_item;
    PyObject *order_id = it[0], *exec_id = it[1], *cl_ord_id = it[2], *symbol = it[3], *price = it[7];
    PyObject *last_price = it[8], *last_qty = it[9], *leaves = it[10], *cum = it[11], *avg = it[12];
    PyObject *transact_time = it[13], *text = it[15], *orig = it[16];
    char side = code_of(it[4]), exec_type = code_of(it[5]), status = code_of(it[6]);
    if (side == 0 || exec_type == 0 || exec_type == '8' || status == 0 || status == '5') Py_RETURN_NONE;
    if (!PyUnicode_Check(text) || !PyUnicode_Check(orig)) Py_RETURN_NONE;
    bool trade = exec_type == 'F';
    if (trade && v42) {  // 4.2: Fill / Partial fill
        int is_zero = PyLong_CheckExact(leaves) ? PyObject_Not(leaves) : -1;
        if (is_zero < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        exec_type = is_zero ? '2' : '1';
    }
    thread_local std::string b;
    b.clear();
    bool ok = int_field(b, "37=", order_id) && int_field(b, "17=", exec_id) &&
              (!v42 || char_field(b, "20=", '0')) &&  // ExecTransType=New: 4.2 only
              char_field(b, "150=", exec_type) && char_field(b, "39=", status) && str_field(b, "11=", cl_ord_id) &&
              (PyUnicode_GET_LENGTH(orig) == 0 || str_field(b, "41=", orig)) && str_field(b, "55=", symbol) &&
              char_field(b, "54=", side) && (price == Py_None || px_field(b, "44=", price)) &&
              (!trade || (int_field(b, "32=", last_qty) && px_field(b, "31=", last_price))) &&
              int_field(b, "151=", leaves) && int_field(b, "14=", cum) && px_field(b, "6=", avg) &&
              time_field(b, "60=", transact_time) && (PyUnicode_GET_LENGTH(text) == 0 || str_field(b, "58=", text));
    if (!ok) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(b.data(), static_cast<Py_ssize_t>(b.size()));
}

PyMethodDef kMethods[] = {
    {"fix_new_order", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_new_order)), METH_FASTCALL,
     "fix_new_order(spec: tuple, index: dict, now: float) -> NewOrder | None: the NewOrder of a plain "
     "NewOrderSingle, or None (tickline.fix_gateway.bridge decides)."},
    {"fix_execution_report_body", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_execution_report_body)),
     METH_FASTCALL,
     "fix_execution_report_body(report: ExecutionReport, fix42: bool) -> bytes | None: the encoded body of the "
     "ExecutionReport, or None (tickline.fix_gateway.bridge.to_fix decides)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void init_fixbridge(py::module_ &m) {
    for (int i = 0; i < kTagCount; ++i) {
        g_tags[i] = PyLong_FromLong(kTagNumbers[i]);  // kept for the life of the process
        if (g_tags[i] == nullptr) throw py::error_already_set();
    }
    g_zero = PyUnicode_InternFromString("0");
    if (g_zero == nullptr) throw py::error_already_set();
    add_functions(m, kMethods);
}

}  // namespace tickline
