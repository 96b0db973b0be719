// The append step of tickline.fix_gateway.store.FileStore: one log record
// [u32 length][u32 crc32][head][data] written into the memory-mapped log.
//
// store.py keeps the Python version of the same step (TICKLINE_FIX_NATIVE=0)
// and decides everything else (where records go, growing the map, replay);
// tests/fix_gateway/test_store_schedule.py checks that both write the same
// bytes.  The CRC is CRC-32 as zlib.crc32 computes it (reflected polynomial
// 0xEDB88320), computed here so that the extension needs no zlib headers.
#include "tickline_aeron.h"

#include <cstdint>
#include <cstring>

namespace tickline {

namespace {

// Slicing-by-8: t[0] is the classic byte table, t[k][i] the CRC of byte i followed by k zero
// bytes, so eight bytes are folded in with eight independent lookups.
struct Crc32Tables {
    std::uint32_t t[8][256];
    constexpr Crc32Tables() : t{} {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
            t[0][i] = c;
        }
        for (int k = 1; k < 8; ++k)
            for (int i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    }
};
constexpr Crc32Tables kCrc;

std::uint32_t load_u32_le(const unsigned char *p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// zlib.crc32(p[:n], crc)
std::uint32_t crc32_update(std::uint32_t crc, const unsigned char *p, Py_ssize_t n) {
    const auto &t = kCrc.t;
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        std::uint32_t lo = crc ^ load_u32_le(p), hi = load_u32_le(p + 4);
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
              t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    }
    for (; n > 0; ++p, --n) crc = t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

void put_u32_le(unsigned char *w, std::uint32_t v) {
    w[0] = static_cast<unsigned char>(v), w[1] = static_cast<unsigned char>(v >> 8);
    w[2] = static_cast<unsigned char>(v >> 16), w[3] = static_cast<unsigned char>(v >> 24);
}

// fix_store_append(log: writable buffer, offset: int, head: bytes, data: bytes) -> None
// Writes the record of payload head + data at ``offset``; ValueError (our fault: the caller
// reserves the room first) when it does not fit.
PyObject *fix_store_append(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[2]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "fix_store_append(log: writable buffer, offset: int, head: bytes, data: bytes)");
        return nullptr;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) return nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) != 0) return nullptr;
    const auto *head = reinterpret_cast<const unsigned char *>(PyBytes_AS_STRING(args[2]));
    const auto *data = reinterpret_cast<const unsigned char *>(PyBytes_AS_STRING(args[3]));
    Py_ssize_t nh = PyBytes_GET_SIZE(args[2]), nd = PyBytes_GET_SIZE(args[3]);
    // Overflow-safe: every sum below is of values already bounded, and the offset is compared
    // with what is left after the record (off + size could wrap for an offset near 2**63).
    constexpr Py_ssize_t kMaxPayload = 0xFFFFFFFF;  // the record's u32 length field
    bool fits = off >= 0 && nh <= kMaxPayload && nd <= kMaxPayload - nh;
    Py_ssize_t size = fits ? 8 + nh + nd : 0;  // <= 2**32 + 7
    fits = fits && size <= view.len && off <= view.len - size;
    if (!fits) {
        PyErr_Format(PyExc_ValueError,
                     "store record does not fit the log: fault=local offset=%zd head=%zd data=%zd capacity=%zd", off, nh,
                     nd, view.len);
        PyBuffer_Release(&view);
        return nullptr;
    }
    auto *w = static_cast<unsigned char *>(view.buf) + off;
    put_u32_le(w, static_cast<std::uint32_t>(nh + nd));
    put_u32_le(w + 4, crc32_update(crc32_update(0, head, nh), data, nd));
    std::memcpy(w + 8, head, static_cast<size_t>(nh));
    std::memcpy(w + 8 + nh, data, static_cast<size_t>(nd));
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"fix_store_append", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fix_store_append)), METH_FASTCALL,
     "fix_store_append(log: writable buffer, offset: int, head: bytes, data: bytes) -> None: write the FileStore "
     "record [u32 len][u32 crc32][head][data] at offset."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void init_fixstore(py::module_ &m) {
    add_functions(m, kMethods);
}

}  // namespace tickline
