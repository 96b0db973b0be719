// HMAC-SHA256 (RFC 2104 over FIPS 180-4's SHA-256) for the cluster members'
// consensus messages: every message a member sends carries the 32-byte tag of
// its bytes under the cluster key, and a member steps only messages whose tag
// checks (cluster/auth.py).
//
// Written here rather than linked from libcrypto so the build needs nothing
// beyond a C++ compiler; the key's inner and outer padded blocks are hashed
// once, when the key is set, so a tag costs the compressions of the message
// plus two.  Checked against RFC 4231's test vectors and Python's hmac module
// (tests/cluster/test_cluster_auth.py).
//
// Thread safety: an HmacSha256 is immutable after construction; sign/verify
// use only locals, and release the GIL for large inputs.
#include "tickline_aeron.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

namespace tickline {

namespace {

constexpr uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

constexpr std::array<uint32_t, 8> IV = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

using State = std::array<uint32_t, 8>;

void compress(State &h, const uint8_t *block) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
        w[i] = uint32_t(block[4 * i]) << 24 | uint32_t(block[4 * i + 1]) << 16 | uint32_t(block[4 * i + 2]) << 8 |
               uint32_t(block[4 * i + 3]);
    }
    for (int i = 16; i < 64; ++i) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

// SHA-256 of (`prefix_blocks` 64-byte blocks already folded into `h`) + data[0:n], written to out.
void finish(State h, uint64_t prefix_blocks, const uint8_t *data, size_t n, uint8_t out[32]) {
    const uint64_t total_bits = (prefix_blocks * 64 + n) * 8;
    size_t full = n / 64;
    for (size_t i = 0; i < full; ++i) {
        compress(h, data + 64 * i);
    }
    uint8_t tail[128] = {};
    size_t rest = n - full * 64;
    if (rest) {
        std::memcpy(tail, data + full * 64, rest);
    }
    tail[rest] = 0x80;
    size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; ++i) {
        tail[tail_len - 1 - i] = uint8_t(total_bits >> (8 * i));
    }
    compress(h, tail);
    if (tail_len == 128) {
        compress(h, tail + 64);
    }
    for (int i = 0; i < 8; ++i) {
        out[4 * i] = uint8_t(h[i] >> 24);
        out[4 * i + 1] = uint8_t(h[i] >> 16);
        out[4 * i + 2] = uint8_t(h[i] >> 8);
        out[4 * i + 3] = uint8_t(h[i]);
    }
}

constexpr size_t TAG = 32;
constexpr size_t NOGIL_BYTES = 64 * 1024;  // below this the GIL round trip costs more than the hash

class HmacSha256 {
public:
    explicit HmacSha256(const std::string &key) {
        uint8_t k[64] = {};
        if (key.size() > 64) {
            finish(IV, 0, reinterpret_cast<const uint8_t *>(key.data()), key.size(), k);
        } else {
            std::memcpy(k, key.data(), key.size());
        }
        uint8_t pad[64];
        for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x36;
        inner_ = IV;
        compress(inner_, pad);
        for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x5c;
        outer_ = IV;
        compress(outer_, pad);
        std::memset(k, 0, sizeof k);
        std::memset(pad, 0, sizeof pad);
    }

    void tag(const uint8_t *data, size_t n, uint8_t out[TAG]) const {
        uint8_t inner_digest[TAG];
        finish(inner_, 1, data, n, inner_digest);
        finish(outer_, 1, inner_digest, TAG, out);
    }

private:
    State inner_{};
    State outer_{};
};

// The bytes of a one-dimensional, contiguous buffer (bytes, bytearray, a memoryview of them).
py::buffer_info contiguous(py::buffer &b) {
    py::buffer_info info = b.request();
    if (info.ndim != 1 || info.strides[0] != info.itemsize) {
        throw py::value_error("HmacSha256 needs a contiguous one-dimensional buffer: ndim=" + std::to_string(info.ndim));
    }
    return info;
}

void tag_buffer(const HmacSha256 &h, const py::buffer_info &info, size_t n, uint8_t out[TAG]) {
    const auto *p = static_cast<const uint8_t *>(info.ptr);
    if (n >= NOGIL_BYTES) {
        py::gil_scoped_release release;
        h.tag(p, n, out);
    } else {
        h.tag(p, n, out);
    }
}

}  // namespace

void init_hmac(py::module_ &m) {
    py::class_<HmacSha256>(m, "HmacSha256",
                           "HMAC-SHA256 under a fixed key (RFC 2104, FIPS 180-4): the cluster's consensus message tags.")
        .def(py::init([](py::bytes key) { return HmacSha256(std::string(key)); }), py::arg("key"))
        .def_property_readonly_static("tag_length", [](py::object) { return TAG; })
        .def("digest", [](const HmacSha256 &h, py::buffer data) {
                py::buffer_info info = contiguous(data);
                uint8_t out[TAG];
                tag_buffer(h, info, size_t(info.size * info.itemsize), out);
                return py::bytes(reinterpret_cast<const char *>(out), TAG);
            }, py::arg("data"), "The 32-byte tag of data.")
        .def("seal", [](const HmacSha256 &h, py::buffer data) {
                py::buffer_info info = contiguous(data);
                size_t n = size_t(info.size * info.itemsize);
                std::string out(n + TAG, '\0');
                std::memcpy(out.data(), info.ptr, n);
                tag_buffer(h, info, n, reinterpret_cast<uint8_t *>(out.data()) + n);
                return py::bytes(out);
            }, py::arg("data"), "data followed by its 32-byte tag.")
        .def("verify", [](const HmacSha256 &h, py::buffer sealed) {
                // True if sealed is a message followed by its tag; compared in constant time.
                py::buffer_info info = contiguous(sealed);
                size_t n = size_t(info.size * info.itemsize);
                if (n < TAG) {
                    return false;
                }
                uint8_t out[TAG];
                tag_buffer(h, info, n - TAG, out);
                const auto *given = static_cast<const uint8_t *>(info.ptr) + (n - TAG);
                uint8_t diff = 0;
                for (size_t i = 0; i < TAG; ++i) diff |= uint8_t(out[i] ^ given[i]);
                return diff == 0;
            }, py::arg("sealed"), "Whether sealed ends with the tag of what precedes it (constant-time compare).");
}

}  // namespace tickline
