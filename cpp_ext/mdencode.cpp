// Market data: SBE TopOfBook messages (schemas/market_data.xml, schema 100
// version 1) encoded for a whole batch in one call, so a feed's publish rate is
// the transport's rather than Python's (about 1 us a message with struct).
//
// tickline.feed.publisher keeps the Python reference of the same encoding
// (TICKLINE_FEED_NATIVE=0) and decides everything else (sequence numbers,
// clocks, offering the messages); tests/feed/test_mdencode.py holds both, and
// the generated codec, to the same bytes.
//
// Every argument is checked before one byte is written: a refused call leaves
// the buffer as it was.  Errors are ValueError naming the argument (fault=user:
// the caller's input); the buffer view is released before returning, and no
// pointer into any argument outlives the call.
#include "tickline_aeron.h"

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mdencode.cpp writes SBE's little-endian fields with memcpy: a little-endian host is assumed"
#endif

namespace tickline {

namespace {

// The message header (blockLength, templateId, schemaId, version) and the
// root block of TopOfBook, at the offsets the schema gives them.
constexpr std::uint16_t kBlockLength = 72;
constexpr std::uint16_t kTemplateId = 1;
constexpr std::uint16_t kSchemaId = 100;
constexpr std::uint16_t kVersion = 1;
constexpr std::size_t kSymbolLength = 16;
constexpr std::size_t kHeaderLength = 8;
constexpr std::size_t kMessageLength = kHeaderLength + kBlockLength;  // 80
constexpr std::size_t kSymbolAt = 8, kExchangeTsAt = 24, kLocalTsAt = 32, kBidAt = 40, kBidSizeAt = 48,
                      kAskAt = 56, kAskSizeAt = 64, kSeqAt = 72;
static_assert(kSeqAt + 8 == kMessageLength, "TopOfBook layout");

PyObject *bad(const char *argument, const std::string &detail) {
    std::string msg = std::string("top-of-book batch refused: argument=") + argument + " " + detail + " fault=user";
    PyErr_SetString(PyExc_ValueError, msg.c_str());
    return nullptr;
}

// One numeric column: a Python int for every message, or a 1-D buffer of 8-byte
// integers with one element per message.
struct Column {
    const char *name;
    bool is_signed_field;  // int64 in the schema (prices); else uint64
    Py_buffer view{};
    bool has_view = false;
    bool unsigned_items = false;
    std::uint64_t scalar = 0;

    Column(const char *n, bool s) : name(n), is_signed_field(s) {}
    Column(const Column &) = delete;
    Column &operator=(const Column &) = delete;
    ~Column() {
        if (has_view) PyBuffer_Release(&view);
    }

    std::uint64_t at(Py_ssize_t i) const {
        if (!has_view) return scalar;
        std::uint64_t v;
        std::memcpy(&v, static_cast<const unsigned char *>(view.buf) + static_cast<std::size_t>(i) * 8, 8);
        return v;
    }
};

// The item format of a buffer column: 'q'-like (int64) or 'Q'-like (uint64); else 0.
char int64_kind(const Py_buffer &v) {
    if (v.itemsize != 8 || v.format == nullptr) return 0;
    const char *f = v.format;
    if (*f == '<' || *f == '=' || *f == '@') ++f;  // native order is little endian here
    if (f[0] == '\0' || f[1] != '\0') return 0;
    switch (f[0]) {
        case 'q': case 'l': case 'n': return 'q';
        case 'Q': case 'L': case 'N': return 'Q';
        default: return 0;
    }
}

// Fills ``col`` from ``obj`` for ``count`` messages.  False with ValueError set
// (or TypeError for something that is neither an int nor a buffer).
// True when the int ``obj`` is below zero.
bool is_negative(PyObject *obj) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    return overflow < 0 || (overflow == 0 && v < 0);
}

// A buffer-protocol failure (not writable, not contiguous) as the caller's error naming the argument.
bool get_buffer(PyObject *obj, Py_buffer *view, int flags, const char *name) {
    if (PyObject_GetBuffer(obj, view, flags) == 0) return true;
    if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *text = value ? PyObject_Str(value) : nullptr;
        const char *reason = text ? PyUnicode_AsUTF8(text) : nullptr;
        if (reason == nullptr) PyErr_Clear();
        bad(name, std::string("reason=unusable_buffer detail=\"") + (reason ? reason : "?") + "\"");
        Py_XDECREF(text);
        Py_XDECREF(type), Py_XDECREF(value), Py_XDECREF(tb);
    }
    return false;
}

// " field=F index=I" of a rows call (built only for an error); empty for a column.
std::string where(const char *field, Py_ssize_t index) {
    if (field == nullptr) return std::string();
    return std::string(" field=") + field + " index=" + std::to_string(index);
}

// The int ``obj`` as a field value: int64 (``is_signed``) or uint64.  False with
// ValueError naming ``name`` (and for a rows call the field and row).
bool int_field(PyObject *obj, bool is_signed, const char *name, const char *field, Py_ssize_t index,
               std::uint64_t &out) {
    if (is_signed) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (v == -1 && PyErr_Occurred()) return false;
        if (overflow != 0) {
            bad(name, "reason=out_of_range range=int64" + where(field, index));
            return false;
        }
        out = static_cast<std::uint64_t>(v);
        return true;
    }
    if (is_negative(obj)) {
        bad(name, "reason=negative range=uint64" + where(field, index));
        return false;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        bad(name, "reason=out_of_range range=uint64" + where(field, index));
        return false;
    }
    out = v;
    return true;
}

bool load_column(Column &col, PyObject *obj, Py_ssize_t count) {
    if (PyLong_Check(obj)) return int_field(obj, col.is_signed_field, col.name, nullptr, 0, col.scalar);
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "top-of-book batch refused: argument=%s reason=not_int_or_buffer type=%s fault=user", col.name,
                     Py_TYPE(obj)->tp_name);
        return false;
    }
    if (!get_buffer(obj, &col.view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, col.name)) return false;
    col.has_view = true;
    char kind = int64_kind(col.view);
    if (kind == 0 || col.view.ndim != 1) {
        bad(col.name, std::string("reason=not_a_1d_int64_buffer format=") +
                          (col.view.format ? col.view.format : "B") + " itemsize=" + std::to_string(col.view.itemsize) +
                          " ndim=" + std::to_string(col.view.ndim));
        return false;
    }
    Py_ssize_t n = col.view.len / 8;
    if (n != count) {
        bad(col.name, "reason=length_mismatch length=" + std::to_string(n) + " count=" + std::to_string(count));
        return false;
    }
    col.unsigned_items = kind == 'Q';
    // A value the field cannot hold: a negative size or time, or a price past int64.
    if (col.unsigned_items != col.is_signed_field) return true;
    std::uint64_t any_high = 0;
    for (Py_ssize_t i = 0; i < n; ++i) any_high |= col.at(i);
    if ((any_high >> 63) != 0) {
        for (Py_ssize_t i = 0; i < n; ++i) {
            if ((col.at(i) >> 63) != 0) {
                bad(col.name, "reason=" + std::string(col.is_signed_field ? "out_of_range range=int64" : "negative range=uint64") +
                                  " index=" + std::to_string(i));
                return false;
            }
        }
    }
    return true;
}

// An index argument (offset, count) as a non-negative Py_ssize_t.
bool load_index(PyObject *obj, const char *name, Py_ssize_t &out) {
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "top-of-book batch refused: argument=%s reason=not_int type=%s fault=user", name,
                     Py_TYPE(obj)->tp_name);
        return false;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return false;
    if (overflow < 0 || (overflow == 0 && v < 0)) {
        bad(name, "reason=negative");
        return false;
    }
    if (overflow > 0 || v > PY_SSIZE_T_MAX) {
        bad(name, "reason=too_large");
        return false;
    }
    out = static_cast<Py_ssize_t>(v);
    return true;
}

// A symbol as the schema's 16-byte char array (ASCII, 1..16 bytes, NUL padded),
// the same rule as the Python encoder's.
bool load_symbol(PyObject *s, const char *name, Py_ssize_t index, unsigned char out[kSymbolLength]) {
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) {
        bad(name, "reason=not_ascii_text index=" + std::to_string(index) + " type=" + Py_TYPE(s)->tp_name);
        return false;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    if (len < 1 || len > static_cast<Py_ssize_t>(kSymbolLength)) {
        bad(name, "reason=symbol_length length=" + std::to_string(len) + " allowed=1..16 index=" + std::to_string(index));
        return false;
    }
    std::memset(out, 0, kSymbolLength);
    std::memcpy(out, PyUnicode_DATA(s), static_cast<std::size_t>(len));
    return true;
}

inline void put_u16(unsigned char *w, std::uint16_t v) { std::memcpy(w, &v, 2); }
inline void put_u64(unsigned char *w, std::uint64_t v) { std::memcpy(w, &v, 8); }

// first_seq as a uint64 with first_seq .. first_seq + count - 1 in 1 .. 2^64 - 1 (0 is never sent).
bool load_first_seq(PyObject *first, Py_ssize_t count, std::uint64_t &out) {
    if (!PyLong_Check(first)) {
        PyErr_Format(PyExc_TypeError, "top-of-book batch refused: argument=first_seq reason=not_int type=%s fault=user",
                     Py_TYPE(first)->tp_name);
        return false;
    }
    if (is_negative(first) || PyObject_Not(first) == 1) {
        bad("first_seq", "reason=below_1");
        return false;
    }
    unsigned long long seq0 = PyLong_AsUnsignedLongLong(first);
    if (seq0 == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        bad("first_seq", "reason=out_of_range range=1..2^64-1");
        return false;
    }
    unsigned long long last = 0;
    if (count > 0 && __builtin_add_overflow(seq0, static_cast<unsigned long long>(count - 1), &last)) {
        bad("first_seq", "reason=sequence_overflow first_seq=" + std::to_string(seq0) + " count=" + std::to_string(count));
        return false;
    }
    out = seq0;
    return true;
}

struct Buffer {
    Py_buffer view{};
    bool has_view = false;
    ~Buffer() {
        if (has_view) PyBuffer_Release(&view);
    }
};

// encode_top_of_book_batch(buffer, offset, count, symbols, symbol_ids, bid, bid_size, ask, ask_size,
//                          exchange_ts, local_ts, first_seq) -> bytes written (count * 80)
PyObject *encode_top_of_book_batch(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12) {
        PyErr_Format(PyExc_TypeError,
                     "encode_top_of_book_batch() takes 12 positional arguments (buffer, offset, count, symbols, "
                     "symbol_ids, bid, bid_size, ask, ask_size, exchange_ts, local_ts, first_seq), got %zd",
                     nargs);
        return nullptr;
    }
    Py_ssize_t offset = 0, count = 0;
    if (!load_index(args[1], "offset", offset) || !load_index(args[2], "count", count)) return nullptr;

    Buffer out;
    if (!get_buffer(args[0], &out.view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS, "buffer")) return nullptr;
    out.has_view = true;
    // offset + count * 80 <= len(buffer), without overflow.
    std::size_t bytes = 0, end = 0;
    if (__builtin_mul_overflow(static_cast<std::size_t>(count), kMessageLength, &bytes) ||
        __builtin_add_overflow(static_cast<std::size_t>(offset), bytes, &end))
        return bad("count", "reason=too_large offset=" + std::to_string(offset) + " count=" + std::to_string(count) +
                                " message_length=80");
    if (end > static_cast<std::size_t>(out.view.len))
        return bad("buffer", "reason=too_small offset=" + std::to_string(offset) + " count=" + std::to_string(count) +
                                 " message_length=80 buffer_length=" + std::to_string(out.view.len));

    std::uint64_t seq0 = 0;
    if (!load_first_seq(args[11], count, seq0)) return nullptr;

    Column bid("bid", true), bid_size("bid_size", false), ask("ask", true), ask_size("ask_size", false),
        exchange_ts("exchange_ts", false), local_ts("local_ts", false), ids("symbol_ids", true);
    bool per_message = args[4] == Py_None;
    Column *cols[] = {&bid, &bid_size, &ask, &ask_size, &exchange_ts, &local_ts, &ids};
    PyObject *col_args[] = {args[5], args[6], args[7], args[8], args[9], args[10], args[4]};
    for (int c = 0; c < (per_message ? 6 : 7); ++c)
        if (!load_column(*cols[c], col_args[c], count)) return nullptr;

    // Symbols last: getting a buffer or a sequence may run Python code, and from
    // here on none runs, so the list read below cannot change under the loop.
    // With symbol_ids None, symbols has one str per message; else it is the
    // table symbol_ids indexes.  Copied out either way (16 bytes a symbol).
    PyObject *symbols = PySequence_Fast(args[3], "top-of-book batch refused: argument=symbols reason=not_a_sequence fault=user");
    if (symbols == nullptr) return nullptr;
    Py_ssize_t nsym = PySequence_Fast_GET_SIZE(symbols);
    std::vector<unsigned char> table(static_cast<std::size_t>(nsym) * kSymbolLength);
    bool symbols_ok = true;
    for (Py_ssize_t i = 0; i < nsym && symbols_ok; ++i)
        symbols_ok = load_symbol(PySequence_Fast_GET_ITEM(symbols, i), "symbols", i,
                                 table.data() + static_cast<std::size_t>(i) * kSymbolLength);
    Py_DECREF(symbols);
    if (!symbols_ok) return nullptr;
    if (per_message && nsym != count)
        return bad("symbols", "reason=length_mismatch length=" + std::to_string(nsym) + " count=" + std::to_string(count));
    if (!per_message) {
        Py_ssize_t n = ids.has_view ? count : 1;
        for (Py_ssize_t i = 0; i < n; ++i) {
            std::uint64_t id = ids.at(i);  // as unsigned: a negative id is huge and refused too
            if (id >= static_cast<std::uint64_t>(nsym)) {
                std::string shown = ids.unsigned_items ? std::to_string(id) : std::to_string(static_cast<std::int64_t>(id));
                return bad("symbol_ids", "reason=out_of_range value=" + shown + " symbols=" + std::to_string(nsym) +
                                             (ids.has_view ? " index=" + std::to_string(i) : std::string()));
            }
        }
    }

    unsigned char *w = static_cast<unsigned char *>(out.view.buf) + offset;
    for (Py_ssize_t i = 0; i < count; ++i, w += kMessageLength) {
        put_u16(w, kBlockLength);
        put_u16(w + 2, kTemplateId);
        put_u16(w + 4, kSchemaId);
        put_u16(w + 6, kVersion);
        std::uint64_t sym = per_message ? static_cast<std::uint64_t>(i) : ids.at(i);
        std::memcpy(w + kSymbolAt, table.data() + sym * kSymbolLength, kSymbolLength);
        put_u64(w + kExchangeTsAt, exchange_ts.at(i));
        put_u64(w + kLocalTsAt, local_ts.at(i));
        put_u64(w + kBidAt, bid.at(i));
        put_u64(w + kBidSizeAt, bid_size.at(i));
        put_u64(w + kAskAt, ask.at(i));
        put_u64(w + kAskSizeAt, ask_size.at(i));
        put_u64(w + kSeqAt, seq0 + static_cast<std::uint64_t>(i));
    }
    return PyLong_FromSize_t(bytes);
}

// encode_top_of_book_rows(buffer, offset, rows, local_ts, first_seq) -> bytes written (len(rows) * 80)
// rows: (symbol, bid | None, bid_size, ask | None, ask_size, exchange_ts) each, what
// MarketDataPublisher.offer_top_of_book_batch takes.  Encoded into a scratch copy
// first, so a refused call writes nothing into buffer.
PyObject *encode_top_of_book_rows(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "encode_top_of_book_rows() takes 5 positional arguments (buffer, offset, rows, local_ts, "
                     "first_seq), got %zd", nargs);
        return nullptr;
    }
    Py_ssize_t offset = 0;
    if (!load_index(args[1], "offset", offset)) return nullptr;
    std::uint64_t local_ts = 0;
    if (!PyLong_Check(args[3])) {
        PyErr_Format(PyExc_TypeError, "top-of-book batch refused: argument=local_ts reason=not_int type=%s fault=user",
                     Py_TYPE(args[3])->tp_name);
        return nullptr;
    }
    if (!int_field(args[3], false, "local_ts", nullptr, 0, local_ts)) return nullptr;
    PyObject *rows = PySequence_Fast(args[2], "top-of-book batch refused: argument=rows reason=not_a_sequence fault=user");
    if (rows == nullptr) return nullptr;
    struct Ref {
        PyObject *o;
        ~Ref() { Py_DECREF(o); }
    } rows_ref{rows};
    Py_ssize_t count = PySequence_Fast_GET_SIZE(rows);
    std::uint64_t seq0 = 0;
    if (!load_first_seq(args[4], count, seq0)) return nullptr;

    // Every row read (no Python code runs while the list is walked: only exact
    // tuples/lists, str and int are accepted) into scratch, then copied out.
    std::vector<unsigned char> scratch(static_cast<std::size_t>(count) * kMessageLength);
    static const char *const kFields[] = {"symbol", "bid", "bid_size", "ask", "ask_size", "exchange_ts"};
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject *row = PySequence_Fast_GET_ITEM(rows, i);
        if (!(PyTuple_CheckExact(row) || PyList_CheckExact(row)) || PySequence_Fast_GET_SIZE(row) != 6)
            return bad("rows", "reason=not_a_6_tuple type=" + std::string(Py_TYPE(row)->tp_name) +
                                   " index=" + std::to_string(i));
        PyObject **f = PySequence_Fast_ITEMS(row);
        unsigned char *w = scratch.data() + static_cast<std::size_t>(i) * kMessageLength;
        if (!load_symbol(f[0], "rows", i, w + kSymbolAt)) return nullptr;
        const std::size_t at[] = {0, kBidAt, kBidSizeAt, kAskAt, kAskSizeAt, kExchangeTsAt};
        for (int k = 1; k < 6; ++k) {
            std::uint64_t v = static_cast<std::uint64_t>(INT64_MIN);  // the null price
            bool price = k == 1 || k == 3;
            if (!(price && f[k] == Py_None)) {
                if (!PyLong_Check(f[k]))
                    return bad("rows", std::string("reason=not_int type=") + Py_TYPE(f[k])->tp_name + where(kFields[k], i));
                if (!int_field(f[k], price, "rows", kFields[k], i, v)) return nullptr;
            }
            put_u64(w + at[k], v);
        }
        put_u16(w, kBlockLength);
        put_u16(w + 2, kTemplateId);
        put_u16(w + 4, kSchemaId);
        put_u16(w + 6, kVersion);
        put_u64(w + kLocalTsAt, local_ts);
        put_u64(w + kSeqAt, seq0 + static_cast<std::uint64_t>(i));
    }

    Buffer out;
    if (!get_buffer(args[0], &out.view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS, "buffer")) return nullptr;
    std::size_t bytes = scratch.size(), end = 0;
    if (__builtin_add_overflow(static_cast<std::size_t>(offset), bytes, &end) ||
        end > static_cast<std::size_t>(out.view.len))
        return bad("buffer", "reason=too_small offset=" + std::to_string(offset) + " count=" + std::to_string(count) +
                                 " message_length=80 buffer_length=" + std::to_string(out.view.len));
    if (bytes > 0) std::memcpy(static_cast<unsigned char *>(out.view.buf) + offset, scratch.data(), bytes);
    return PyLong_FromSize_t(bytes);
}

PyMethodDef kMethods[] = {
    {"encode_top_of_book_batch",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(encode_top_of_book_batch)), METH_FASTCALL,
     "encode_top_of_book_batch(buffer, offset, count, symbols, symbol_ids, bid, bid_size, ask, ask_size, "
     "exchange_ts, local_ts, first_seq) -> int\n\n"
     "Write count SBE TopOfBook messages (schema 100 version 1, 80 bytes each: header + block with seqNum)\n"
     "back to back into the writable buffer from offset; returns the bytes written.  symbols: one str per\n"
     "message when symbol_ids is None, else the table symbol_ids indexes (an int for every message or an\n"
     "int64 buffer of count).  bid, ask (int64; -2**63 is the null price), bid_size, ask_size, exchange_ts,\n"
     "local_ts (uint64): an int for every message, or a 1-D buffer of count 8-byte integers (int64 or\n"
     "uint64).  Message i gets seqNum first_seq + i.  Every argument is checked before anything is\n"
     "written; ValueError names the argument."},
    {"encode_top_of_book_rows",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(encode_top_of_book_rows)), METH_FASTCALL,
     "encode_top_of_book_rows(buffer, offset, rows, local_ts, first_seq) -> int\n\n"
     "The same messages from rows of (symbol, bid | None, bid_size, ask | None, ask_size, exchange_ts)\n"
     "(tuples or lists), every message stamped local_ts, message i numbered first_seq + i.\n"
     "ValueError names the row (index=) and field; a refused call writes nothing."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void init_mdencode(py::module_ &m) {
    add_functions(m, kMethods);
}

}  // namespace tickline
