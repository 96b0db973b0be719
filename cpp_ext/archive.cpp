// The archive's data paths (tickline.archive): the recorder copies whole
// blocks of an image's term buffer into segment files, the replayer reads
// them back and offers whole blocks to an exclusive publication, and the
// scanner walks recorded frames (crash recovery, verify).  Python decides
// everything else (catalog, control protocol, when to call what).
//
// Storage layout (the same as the term buffers, so a frame's header says
// where it belongs): a recording is a run of segment files
// "<recording_id>-<base_position>.rec", each segment_length bytes (a
// multiple of the term length), pre-allocated.  Segment bases are aligned to
// the terms of the recording: the first base is the start position rounded
// down to its term's start, so a frame at stream position p lives at file
// offset p - base, which is also its term offset modulo the term length.
//
// Every byte read back from a segment is hostile: a frame is used only after
// its length, type, term offset, term id and session id agree with where it
// was found, and errors name the recording, the file and the offset.
//
// Threading: each object belongs to one Python thread (it holds the GIL
// throughout; the file I/O is bounded by the block size of one call).
#include "tickline_aeron.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include <fcntl.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tickline {

namespace {

constexpr int32_t kHeaderLength = 32;  // an Aeron data frame header
constexpr int32_t kAlignment = 32;     // frames are aligned to 32 bytes in a term
constexpr uint16_t kTypePad = 0;
constexpr uint16_t kTypeData = 1;

PyObject *ArchiveDamageError = nullptr;  // a recorded frame or segment is not what it must be

int32_t load_i32(const uint8_t *p) {
    int32_t v;
    std::memcpy(&v, p, 4);  // Aeron's headers are little-endian; so is every host Aeron runs on
    return v;
}

uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

void store_i32(uint8_t *p, int32_t v) { std::memcpy(p, &v, 4); }

int64_t align_frame(int64_t n) { return (n + kAlignment - 1) & ~static_cast<int64_t>(kAlignment - 1); }

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }


// ---------------------------------------------------------------- CRC-32C

// A recording's optional per-frame checksum (ChecksumType CRC32C): the
// Castagnoli CRC of a data frame's payload, kept in the frame header's
// reserved value (bytes 24..31: the CRC, zero-extended).  SSE 4.2's crc32
// instruction where the CPU has it, else slicing-by-8 tables (same result).
constexpr int32_t kChecksumNone = 0;
constexpr int32_t kChecksumCrc32c = 1;
constexpr int32_t kReservedValueOffset = 24;

struct Crc32cTables {
    uint32_t t[8][256];
    Crc32cTables() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i) {
            for (int j = 1; j < 8; ++j) t[j][i] = (t[j - 1][i] >> 8) ^ t[0][t[j - 1][i] & 0xFF];
        }
    }
};

uint32_t crc32c_soft(uint32_t crc, const uint8_t *p, size_t n) {
    static const Crc32cTables tables;
    const auto &t = tables.t;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo, hi;
        std::memcpy(&lo, p, 4);
        std::memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
              t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        std::memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = static_cast<uint32_t>(c);
    while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

uint32_t crc32c(const uint8_t *p, size_t n) {
#if defined(__x86_64__)
    static const bool hw = __builtin_cpu_supports("sse4.2");
    if (hw) return crc32c_hw(0, p, n);
#endif
    return crc32c_soft(0, p, n);
}

// The checksum a data frame at ``hdr`` (``frame_length`` bytes, all present) must carry.
uint64_t frame_checksum(const uint8_t *hdr, int32_t frame_length) {
    return crc32c(hdr + kHeaderLength, static_cast<size_t>(frame_length - kHeaderLength));
}

uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// Nullptr when the whole frame at ``hdr`` matches its stored checksum (or the recording keeps none).
const char *check_checksum(int32_t checksum, const uint8_t *hdr) {
    if (checksum != kChecksumCrc32c || load_u16(hdr + 6) != kTypeData) return nullptr;
    if (load_u64(hdr + kReservedValueOffset) != frame_checksum(hdr, load_i32(hdr))) return "frame checksum mismatch";
    return nullptr;
}

std::string segment_path(const std::string &dir, int64_t recording_id, int64_t base) {
    return dir + "/" + std::to_string(recording_id) + "-" + std::to_string(base) + ".rec";
}

// What every reader and writer of a recording's segments agrees on.
struct Geometry {
    std::string dir;
    int64_t recording_id = 0;
    int64_t start_position = 0;
    int32_t term_length = 0;
    int64_t segment_length = 0;
    int32_t initial_term_id = 0;
    int32_t session_id = 0;
    int32_t mtu = 0;
    int32_t checksum = kChecksumNone;

    void validate() const {
        if (!is_power_of_two(term_length) || term_length < 64 * 1024 || term_length > (1 << 30)) {
            raise(PyExc_ValueError, "term length must be a power of two in [64 KiB, 1 GiB]: recording_id=" +
                                        std::to_string(recording_id) + " term_length=" + std::to_string(term_length));
        }
        if (segment_length < term_length || segment_length % term_length != 0 || segment_length > (int64_t{1} << 40)) {
            raise(PyExc_ValueError, "segment length must be a multiple of the term length: recording_id=" +
                                        std::to_string(recording_id) + " segment_length=" + std::to_string(segment_length) +
                                        " term_length=" + std::to_string(term_length));
        }
        if (start_position < 0 || (start_position & (kAlignment - 1)) != 0) {
            raise(PyExc_ValueError, "start position must be >= 0 and frame aligned: recording_id=" +
                                        std::to_string(recording_id) + " start_position=" + std::to_string(start_position));
        }
        if (checksum != kChecksumNone && checksum != kChecksumCrc32c) {
            raise(PyExc_ValueError, "checksum type unknown: recording_id=" + std::to_string(recording_id) +
                                        " checksum=" + std::to_string(checksum));
        }
        if (mtu < kHeaderLength || mtu > 65536 || mtu % kAlignment != 0) {
            raise(PyExc_ValueError, "mtu must be a multiple of 32 in [32, 65536]: recording_id=" +
                                        std::to_string(recording_id) + " mtu=" + std::to_string(mtu));
        }
    }
    int64_t segment_base(int64_t position) const {
        int64_t first = start_position - (start_position & (term_length - 1));
        return first + ((position - first) / segment_length) * segment_length;
    }
    int32_t term_id_at(int64_t position) const {
        // Aeron's term ids wrap as 32-bit integers.
        uint64_t t = static_cast<uint64_t>(static_cast<uint32_t>(initial_term_id)) + static_cast<uint64_t>(position / term_length);
        return static_cast<int32_t>(static_cast<uint32_t>(t));
    }
    std::string where(const std::string &file, int64_t offset, int64_t position) const {
        return "recording_id=" + std::to_string(recording_id) + " file=" + file + " offset=" + std::to_string(offset) +
               " position=" + std::to_string(position);
    }
};

// Checks the frame header at ``hdr`` found at stream ``position``.  Returns
// nullptr when it is a frame that belongs there, else the reason it is not.
// ``room`` is how many bytes of the term are left from the frame's start.
const char *check_frame(const Geometry &g, const uint8_t *hdr, int64_t position, int64_t room) {
    int32_t frame_length = load_i32(hdr);
    uint16_t type = load_u16(hdr + 6);
    if (type != kTypeData && type != kTypePad) return "unknown frame type";
    if (frame_length < kHeaderLength) return "frame length below the header length";
    if (align_frame(frame_length) > room) return "frame runs past the end of its term";
    if (type == kTypeData && frame_length > g.mtu) return "data frame longer than the recording's mtu";
    if (load_i32(hdr + 8) != static_cast<int32_t>(position & (g.term_length - 1))) return "frame's term offset is not where it lies";
    if (load_i32(hdr + 20) != g.term_id_at(position)) return "frame's term id is not its term's";
    if (load_i32(hdr + 12) != g.session_id) return "frame's session id is not the recording's";
    return nullptr;
}

[[noreturn]] void raise_damage(const Geometry &g, const std::string &file, int64_t offset, int64_t position,
                               const std::string &reason) {
    raise(ArchiveDamageError, "recording damaged: " + g.where(file, offset, position) + " reason=" + reason + " fault=storage");
}

[[noreturn]] void raise_os(int err, const std::string &what, const std::string &detail) {
    PyObject *args = Py_BuildValue("(is)", err, (what + ": " + detail + " error=" + std::strerror(err)).c_str());
    if (args != nullptr) {
        PyErr_SetObject(PyExc_OSError, args);
        Py_DECREF(args);
    }
    throw py::error_already_set();
}

// An open segment file (one at a time per reader or writer).
struct Segment {
    int fd = -1;
    int64_t base = -1;
    std::string path;

    void close_fd() {
        if (fd >= 0) ::close(fd);
        fd = -1;
        base = -1;
    }
    ~Segment() { close_fd(); }
};

// Reads exactly n bytes at offset; returns how many were there (short at EOF).
ssize_t read_fully(int fd, uint8_t *buf, size_t n, int64_t offset, int *err) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + static_cast<int64_t>(got)));
        if (r < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return -1;
        }
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    return static_cast<ssize_t>(got);
}

int write_fully(int fd, const uint8_t *buf, size_t n, int64_t offset) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = ::pwrite(fd, buf + done, n - done, static_cast<off_t>(offset + static_cast<int64_t>(done)));
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return ENOSPC;
        done += static_cast<size_t>(w);
    }
    return 0;
}

// ---------------------------------------------------------------- Recorder

struct Recorder {
    std::shared_ptr<Subscription> sub;
    Geometry g;
    std::string source_identity;
    int64_t position = 0;
    int64_t bytes_written = 0;
    bool sync_each_segment = false;
    bool closed = false;
    Segment seg;
    std::vector<uint8_t> scratch;  // a block with its checksums filled in (checksummed recordings)
    // Set by the block handler (which cannot raise through C): the first failure.
    int write_errno = 0;
    std::string write_error;

    void open_segment(int64_t base) {
        if (seg.fd >= 0 && sync_each_segment) ::fdatasync(seg.fd);
        seg.close_fd();
        seg.path = segment_path(g.dir, g.recording_id, base);
        int fd = ::open(seg.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            write_errno = errno;
            write_error = "segment create failed: " + g.where(seg.path, 0, position);
            return;
        }
        struct stat st;
        if (::fstat(fd, &st) == 0 && st.st_size < g.segment_length) {
            int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(g.segment_length));
            if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
                ::close(fd);
                write_errno = rc;
                write_error = "segment pre-allocation failed: " + g.where(seg.path, 0, position) +
                              " segment_length=" + std::to_string(g.segment_length);
                return;
            }
        }
        seg.fd = fd;
        seg.base = base;
    }

    static void on_block(void *clientd, const uint8_t *buffer, size_t length, int32_t, int32_t) {
        auto *r = static_cast<Recorder *>(clientd);
        if (r->write_errno != 0) return;  // the recording already failed; nothing after the gap is written
        int64_t base = r->g.segment_base(r->position);
        if (r->seg.base != base) {
            r->open_segment(base);
            if (r->write_errno != 0) return;
        }
        int64_t offset = r->position - base;
        // A block never crosses a term, and segments hold whole terms.
        size_t n = length;
        if (length >= static_cast<size_t>(kHeaderLength) && load_u16(buffer + 6) == kTypePad) {
            n = kHeaderLength;  // the padding's body is stale log bytes: its header says how long it is
        }
        if (offset + static_cast<int64_t>(length) > r->g.segment_length) {
            r->write_errno = EINVAL;
            r->write_error = "block crosses a segment end (ours): " + r->g.where(r->seg.path, offset, r->position);
            return;
        }
        const uint8_t *src = buffer;
        if (r->g.checksum != kChecksumNone && n == length) {
            // The log buffer is the publisher's: the checksums go into a copy of the block.
            r->scratch.resize(length);
            std::memcpy(r->scratch.data(), buffer, length);
            uint8_t *p = r->scratch.data();
            size_t off = 0;
            while (off + kHeaderLength <= length) {
                int32_t frame_length = load_i32(p + off);
                if (frame_length < kHeaderLength || static_cast<size_t>(align_frame(frame_length)) > length - off) {
                    r->write_errno = EIO;
                    r->write_error = "block holds a frame that does not fit it (ours): " +
                                     r->g.where(r->seg.path, offset + static_cast<int64_t>(off), r->position + static_cast<int64_t>(off)) +
                                     " frame_length=" + std::to_string(frame_length);
                    return;
                }
                if (load_u16(p + off + 6) == kTypeData) {
                    uint64_t sum = frame_checksum(p + off, frame_length);
                    std::memcpy(p + off + kReservedValueOffset, &sum, 8);
                }
                off += static_cast<size_t>(align_frame(frame_length));
            }
            src = p;
        }
        int err = write_fully(r->seg.fd, src, n, offset);
        if (err != 0) {
            r->write_errno = err;
            r->write_error = "segment write failed: " + r->g.where(r->seg.path, offset, r->position) +
                             " length=" + std::to_string(n);
            return;
        }
        r->position += static_cast<int64_t>(length);
        r->bytes_written += static_cast<int64_t>(n);
    }

    // One poll of the image: returns the bytes recorded, or -1 when the image
    // is gone (the source closed or timed out; the recording should stop).
    int64_t record(int64_t block_limit) {
        if (closed) raise(ClosedError, "recorder is closed: recording_id=" + std::to_string(g.recording_id));
        if (write_errno != 0) raise_os(write_errno, "recording failed", write_error);
        if (!sub->usable()) return -1;
        if (block_limit < kHeaderLength) block_limit = kHeaderLength;
        if (block_limit > g.term_length) block_limit = g.term_length;
        aeron_image_t *image = aeron_subscription_image_by_session_id(sub->sub, g.session_id);
        if (image == nullptr) return -1;
        int64_t before = position;
        int64_t image_position = aeron_image_position(image);
        int rc = 0;
        bool gone = aeron_image_is_closed(image);
        if (image_position != position) {
            aeron_subscription_image_release(sub->sub, image);
            write_errno = EIO;
            write_error = "image position moved under the recorder (ours): recording_id=" + std::to_string(g.recording_id) +
                          " image_position=" + std::to_string(image_position) + " position=" + std::to_string(position);
            raise_os(write_errno, "recording failed", write_error);
        }
        if (!gone) rc = aeron_image_block_poll(image, on_block, this, static_cast<size_t>(block_limit));
        aeron_subscription_image_release(sub->sub, image);
        if (rc < 0) raise(AeronError, "block poll failed: recording_id=" + std::to_string(g.recording_id) + " error=" + aeron_error_text());
        if (write_errno != 0) raise_os(write_errno, "recording failed", write_error);
        if (gone) return -1;
        return position - before;
    }

    void sync() {
        if (seg.fd >= 0 && ::fdatasync(seg.fd) != 0) {
            int err = errno;
            raise_os(err, "segment sync failed", g.where(seg.path, 0, position));
        }
    }

    void close() {
        if (closed) return;
        closed = true;
        seg.close_fd();
    }
};

std::shared_ptr<Recorder> make_recorder(std::shared_ptr<Subscription> sub, int32_t session_id, const std::string &dir,
                                        int64_t recording_id, int64_t segment_length, bool sync_each_segment,
                                        int64_t recording_start_position, int32_t checksum) {
    sub->check_open();
    aeron_image_t *image = aeron_subscription_image_by_session_id(sub->sub, session_id);
    if (image == nullptr) {
        raise(PyExc_LookupError, "no image to record: session_id=" + std::to_string(session_id) + " channel=" +
                                     sub->channel + " stream_id=" + std::to_string(sub->stream_id));
    }
    aeron_image_constants_t k;
    aeron_image_constants(image, &k);
    auto r = std::make_shared<Recorder>();
    r->sub = sub;
    r->g.dir = dir;
    r->g.recording_id = recording_id;
    // An extension continues a recording that started earlier: the segments
    // stay aligned to the recording's start, writing resumes at the image's.
    int64_t image_position = aeron_image_position(image);
    r->g.start_position = recording_start_position >= 0 ? recording_start_position : image_position;
    r->g.term_length = static_cast<int32_t>(k.term_buffer_length);
    // Segments hold whole terms: a stream whose term is longer than the
    // configured segment gets one term per segment.
    r->g.segment_length = segment_length < static_cast<int64_t>(k.term_buffer_length) ? static_cast<int64_t>(k.term_buffer_length) : segment_length;
    r->g.initial_term_id = k.initial_term_id;
    r->g.session_id = k.session_id;
    r->g.mtu = static_cast<int32_t>(k.mtu_length);
    r->source_identity = k.source_identity != nullptr ? k.source_identity : "";
    r->position = image_position;
    r->sync_each_segment = sync_each_segment;
    r->g.checksum = checksum;
    aeron_subscription_image_release(sub->sub, image);
    r->g.validate();
    if (image_position < r->g.start_position) {
        raise(PyExc_ValueError, "image starts before the recording it would extend: recording_id=" +
                                    std::to_string(recording_id) + " image_position=" + std::to_string(image_position) +
                                    " start_position=" + std::to_string(r->g.start_position));
    }
    return r;
}

// ---------------------------------------------------------------- Replayer

struct Replayer {
    std::shared_ptr<Publication> pub;
    Geometry g;
    int64_t position = 0;
    int64_t pad_end = -1;  // inside a padding frame being re-made in chunks, its end
    bool closed = false;
    Segment seg;
    std::vector<uint8_t> buf;

    void open_segment(int64_t base) {
        seg.close_fd();
        seg.path = segment_path(g.dir, g.recording_id, base);
        int fd = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == ENOENT) raise_damage(g, seg.path, 0, position, "segment file missing");
            raise_os(err, "segment open failed", g.where(seg.path, 0, position));
        }
        seg.fd = fd;
        seg.base = base;
    }

    int64_t pad_chunk() {
        int64_t remaining = pad_end - position;
        int64_t max_payload = static_cast<int64_t>(pub->max_message_length) & ~static_cast<int64_t>(kAlignment - 1);
        int64_t payload = remaining - kHeaderLength;
        if (payload > max_payload) payload = max_payload;
        int64_t r = aeron_exclusive_publication_append_padding(pub->xpub, static_cast<size_t>(payload));
        return offered(r, payload + kHeaderLength);
    }

    int64_t offered(int64_t r, int64_t length) {
        if (r > 0) {
            position += length;
            if (r != position) {
                raise(AeronError, "replay publication position disagrees with the recording (ours): recording_id=" +
                                      std::to_string(g.recording_id) + " publication_position=" + std::to_string(r) +
                                      " position=" + std::to_string(position));
            }
            if (pad_end >= 0 && position >= pad_end) pad_end = -1;
            return length;
        }
        if (r == AERON_PUBLICATION_NOT_CONNECTED || r == AERON_PUBLICATION_BACK_PRESSURED || r == AERON_PUBLICATION_ADMIN_ACTION) return 0;
        if (r == AERON_PUBLICATION_CLOSED) return -1;
        raise(PublicationError, "replay offer failed: recording_id=" + std::to_string(g.recording_id) + " position=" +
                                    std::to_string(position) + " result=" + std::to_string(r) + " error=" + aeron_error_text());
    }

    // Offers at most one block of recorded frames below ``limit`` (a frame
    // boundary: the recorder's position or the replay's end).  Returns the
    // bytes replayed (0: nothing to do or back pressure), -1 when the
    // publication is closed.
    int64_t replay(int64_t limit, int64_t max_bytes) {
        if (closed || !pub->usable()) return -1;
        if (limit <= position) return 0;
        // Back pressure is seen before a block is read: a block read and
        // checked now would be read and checked again on every retry until
        // the subscriber moves (a replay outrunning its subscriber spent
        // most of its CPU that way).  A closed publication goes on to the
        // offer below, which reports it.
        int64_t pub_limit = aeron_exclusive_publication_position_limit(pub->xpub);
        if (pub_limit >= 0 && pub_limit <= position) return 0;
        if (pad_end > position) return pad_chunk();
        int64_t base = g.segment_base(position);
        if (seg.base != base) open_segment(base);
        int64_t term_offset = position & (g.term_length - 1);
        int64_t want = limit - position;
        if (want > g.term_length - term_offset) want = g.term_length - term_offset;
        if (max_bytes < g.mtu) max_bytes = g.mtu;
        if (max_bytes > (int64_t{1} << 24)) max_bytes = int64_t{1} << 24;  // the read buffer's bound
        if (want > max_bytes) want = max_bytes;
        if (want > static_cast<int64_t>(buf.size())) buf.resize(static_cast<size_t>(want));
        int64_t offset = position - base;
        int err = 0;
        ssize_t got = read_fully(seg.fd, buf.data(), static_cast<size_t>(want), offset, &err);
        if (got < 0) raise_os(err, "segment read failed", g.where(seg.path, offset, position));
        if (got < kHeaderLength) raise_damage(g, seg.path, offset, position, "segment file truncated");
        int64_t n = got;
        int64_t off = 0;
        while (off + kHeaderLength <= n) {
            const uint8_t *hdr = buf.data() + off;
            if (load_i32(hdr) == 0) break;
            const char *bad = check_frame(g, hdr, position + off, g.term_length - term_offset - off);
            if (bad != nullptr) raise_damage(g, seg.path, offset + off, position + off, bad);
            int64_t aligned = align_frame(load_i32(hdr));
            if (load_u16(hdr + 6) == kTypePad) {
                if (off == 0) {
                    if (position + aligned > limit) raise_damage(g, seg.path, offset, position, "padding runs past the recorded range");
                    pad_end = position + aligned;
                    return pad_chunk();
                }
                break;
            }
            if (off + aligned > n) break;
            const char *sum = check_checksum(g.checksum, hdr);
            if (sum != nullptr) raise_damage(g, seg.path, offset + off, position + off, sum);
            store_i32(buf.data() + off + 12, pub->session_id);
            store_i32(buf.data() + off + 16, pub->stream_id);
            off += aligned;
        }
        if (off == 0) {
            // Below the limit there must be a whole frame here: the recorder writes whole blocks.
            if (n < want) raise_damage(g, seg.path, offset + n, position + n, "segment file truncated");
            raise_damage(g, seg.path, offset, position,
                         load_i32(buf.data()) == 0 ? "no frame at a recorded position" : "frame crosses the replay limit");
        }
        return offered(aeron_exclusive_publication_offer_block(pub->xpub, buf.data(), static_cast<size_t>(off)), off);
    }

    void close() {
        if (closed) return;
        closed = true;
        seg.close_fd();
    }
};

std::shared_ptr<Replayer> make_replayer(std::shared_ptr<Publication> pub, const std::string &dir, int64_t recording_id,
                                        int64_t start_position, int32_t term_length, int64_t segment_length,
                                        int32_t initial_term_id, int32_t session_id, int32_t mtu, int64_t from_position,
                                        int32_t checksum) {
    pub->check_open();
    if (pub->xpub == nullptr) raise(PyExc_ValueError, "replay needs an exclusive publication: channel=" + pub->channel);
    auto r = std::make_shared<Replayer>();
    r->pub = pub;
    r->g = Geometry{dir, recording_id, start_position, term_length, segment_length, initial_term_id, session_id, mtu, checksum};
    r->g.validate();
    if (from_position < start_position || (from_position & (kAlignment - 1)) != 0) {
        raise(PyExc_ValueError, "replay position must be frame aligned and not before the start: recording_id=" +
                                    std::to_string(recording_id) + " position=" + std::to_string(from_position) +
                                    " start_position=" + std::to_string(start_position));
    }
    int64_t pub_position = aeron_exclusive_publication_position(pub->xpub);
    if (pub_position != from_position || pub->term_buffer_length != static_cast<size_t>(term_length)) {
        raise(PyExc_ValueError, "replay publication does not start where the replay does (ours): recording_id=" +
                                    std::to_string(recording_id) + " publication_position=" + std::to_string(pub_position) +
                                    " position=" + std::to_string(from_position) + " publication_term_length=" +
                                    std::to_string(pub->term_buffer_length));
    }
    r->position = from_position;
    return r;
}

// ---------------------------------------------------------------- Scanner

struct ScanResult {
    int64_t position;     // the end of the last whole, valid frame
    std::string damage;   // empty when the scan ended on an unwritten (zero) frame or the limit
};

// Walks the frames of a recording from ``from_position`` (a frame boundary)
// up to ``limit`` (or the end of the written frames when limit < 0).
ScanResult scan(const Geometry &g, int64_t from_position, int64_t limit) {
    ScanResult out{from_position, ""};
    Segment seg;
    std::vector<uint8_t> buf(1 << 16);
    int64_t position = from_position;
    for (;;) {
        if (limit >= 0 && position >= limit) break;
        int64_t base = g.segment_base(position);
        if (seg.base != base) {
            seg.close_fd();
            seg.path = segment_path(g.dir, g.recording_id, base);
            int fd = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (errno == ENOENT && limit < 0 && position == base && position != from_position) break;  // not started yet
                out.damage = "segment file unreadable: " + g.where(seg.path, position - base, position) + " error=" + std::strerror(errno);
                break;
            }
            seg.fd = fd;
            seg.base = base;
        }
        int64_t term_offset = position & (g.term_length - 1);
        int64_t want = std::min<int64_t>(static_cast<int64_t>(buf.size()), g.term_length - term_offset);
        if (limit >= 0) want = std::min(want, limit - position);
        int err = 0;
        ssize_t got = read_fully(seg.fd, buf.data(), static_cast<size_t>(want), position - base, &err);
        if (got < 0) {
            out.damage = "segment read failed: " + g.where(seg.path, position - base, position) + " error=" + std::strerror(err);
            break;
        }
        int64_t off = 0;
        bool stop = false;
        while (off + kHeaderLength <= got) {
            const uint8_t *hdr = buf.data() + off;
            if (load_i32(hdr) == 0) {
                stop = true;
                if (limit >= 0) out.damage = "no frame at a recorded position: " + g.where(seg.path, position - base + off, position + off);
                break;
            }
            const char *bad = check_frame(g, hdr, position + off, g.term_length - term_offset - off);
            if (bad != nullptr) {
                out.damage = std::string(bad) + ": " + g.where(seg.path, position - base + off, position + off);
                stop = true;
                break;
            }
            int64_t aligned = align_frame(load_i32(hdr));
            if (load_u16(hdr + 6) == kTypePad) {
                if (limit >= 0 && position + off + aligned > limit) {
                    out.damage = "padding runs past the recorded range: " + g.where(seg.path, position - base + off, position + off);
                    stop = true;
                    break;
                }
                off += aligned;  // the body of a padding frame is not read: it was never written
                break;
            }
            if (off + aligned > got) break;
            const char *sum = check_checksum(g.checksum, hdr);
            if (sum != nullptr) {
                out.damage = std::string(sum) + ": " + g.where(seg.path, position - base + off, position + off);
                stop = true;
                break;
            }
            off += aligned;
        }
        if (off == 0 && !stop) {
            if (got < want || got < kHeaderLength) {
                out.damage = "segment file truncated: " + g.where(seg.path, position - base + got, position + got);
            } else {
                out.damage = "frame crosses the scan limit: " + g.where(seg.path, position - base, position);
            }
            stop = true;
        }
        position += off;
        out.position = position;
        if (stop) break;
    }
    return out;
}

// ---------------------------------------------------------------- Bench loops

// `tickline bench archive`'s publisher and subscriber: the full-rate loops a
// Python loop could not drive.  Each runs in a process of its own (bench.py
// starts them), holding the GIL throughout, so nothing can close the
// publication or subscription under it; both are bounded by a count and a
// deadline, and check for signals.

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t thread_cpu_ns() {
    struct timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Both loops spin while they find nothing to do (back pressure, an empty
// poll), and give their CPU away (sched_yield) every kSpinsBeforeYield empty
// tries: Aeron's backoff without its park.  On a machine with a core per
// busy thread the yield returns at once; on one with fewer (two cores for a
// publisher, a subscriber, the archive's thread and the driver's) a caught-up
// loop would otherwise spin through the time slice of the thread it waits for.
constexpr int64_t kSpinsBeforeYield = 64;

// Offers ``count`` messages of ``length`` bytes as fast as the publication
// takes them: (sent, start_ns, end_ns, back_pressured offers, position).
py::tuple bench_offer(std::shared_ptr<Publication> pub, int64_t length, int64_t count, double max_seconds) {
    pub->check_open();
    if (length < 1 || static_cast<size_t>(length) > pub->max_message_length) {
        raise(PyExc_ValueError, "bench message length out of range: length=" + std::to_string(length) +
                                    " max_message_length=" + std::to_string(pub->max_message_length));
    }
    if (count < 0) raise(PyExc_ValueError, "bench message count must be >= 0: count=" + std::to_string(count));
    if (!(max_seconds >= 0 && max_seconds <= 3600)) raise(PyExc_ValueError, "bench max_seconds out of range [0, 3600]");
    std::vector<uint8_t> msg(static_cast<size_t>(length));
    for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(i * 31 + 7);
    int64_t deadline = now_ns() + static_cast<int64_t>(max_seconds * 1e9);
    int64_t sent = 0, pressured = 0, empty = 0;
    int64_t start = now_ns();
    while (sent < count) {
        std::memcpy(msg.data(), &sent, std::min<size_t>(8, msg.size()));
        int64_t r = pub->xpub != nullptr ? aeron_exclusive_publication_offer(pub->xpub, msg.data(), msg.size(), nullptr, nullptr)
                                          : aeron_publication_offer(pub->pub, msg.data(), msg.size(), nullptr, nullptr);
        if (r > 0) {
            ++sent;
            empty = 0;
            continue;
        }
        if (r == AERON_PUBLICATION_CLOSED || r == AERON_PUBLICATION_MAX_POSITION_EXCEEDED || r == AERON_PUBLICATION_ERROR) {
            raise(PublicationError, "bench offer failed: sent=" + std::to_string(sent) + " result=" + std::to_string(r));
        }
        ++pressured;
        if (++empty % kSpinsBeforeYield == 0) std::this_thread::yield();
        if ((pressured & 0xFFFF) == 0) {
            if (now_ns() > deadline) break;
            if (PyErr_CheckSignals() < 0) throw py::error_already_set();
        }
    }
    int64_t end = now_ns();
    int64_t position = pub->xpub != nullptr ? aeron_exclusive_publication_position(pub->xpub) : aeron_publication_position(pub->pub);
    return py::make_tuple(sent, start, end, pressured, position);
}

struct DrainCount {
    int64_t fragments = 0;
    int64_t bytes = 0;
};

void on_drained(void *clientd, const uint8_t *, size_t length, aeron_header_t *) {
    auto *c = static_cast<DrainCount *>(clientd);
    c->fragments += 1;
    c->bytes += static_cast<int64_t>(length);
}

// Polls image ``session_id`` (fragment by fragment, as a subscriber does)
// until ``count`` fragments came (or the image closed): (fragments, payload bytes,
// first_ns, end_ns, position, cpu_ns).  first_ns is when the first fragment
// came; cpu_ns is this thread's CPU time from then to the end (the spinning
// before the first fragment is not the stream's cost).
// ``any_image``: poll the subscription's first image, whichever session it
// is (the loop can then start before the image exists: a replay's session
// is known only once the replay has started).
py::tuple bench_drain(std::shared_ptr<Subscription> sub, int32_t session_id, int64_t count, double max_seconds,
                      bool any_image) {
    sub->check_open();
    if (!(max_seconds >= 0 && max_seconds <= 3600)) raise(PyExc_ValueError, "bench max_seconds out of range [0, 3600]");
    PollGuard guard(*sub);
    if (!guard.enter("archive_bench_drain")) throw py::error_already_set();
    int64_t deadline = now_ns() + static_cast<int64_t>(max_seconds * 1e9);
    DrainCount c;
    int64_t first = 0, first_cpu = 0, position = -1, empty = 0;
    for (uint64_t spins = 0;; ++spins) {
        aeron_image_t *image = any_image ? aeron_subscription_image_at_index(sub->sub, 0)
                                         : aeron_subscription_image_by_session_id(sub->sub, session_id);
        if (image != nullptr) {
            int rc = aeron_image_poll(image, on_drained, &c, 256);
            position = aeron_image_position(image);
            bool closed = aeron_image_is_closed(image);
            aeron_subscription_image_release(sub->sub, image);
            if (rc < 0) raise(AeronError, std::string("bench poll failed: error=") + aeron_error_text());
            if (rc > 0 && first == 0) {
                first = now_ns();
                first_cpu = thread_cpu_ns();
            }
            if (c.fragments >= count || (closed && rc == 0)) break;
            if (rc > 0) {
                empty = 0;
                continue;
            }
        }
        if (++empty % kSpinsBeforeYield == 0) std::this_thread::yield();
        if ((spins & 0xFFF) == 0) {
            if (now_ns() > deadline) break;
            if (PyErr_CheckSignals() < 0) throw py::error_already_set();
        }
    }
    int64_t end = now_ns();
    return py::make_tuple(c.fragments, c.bytes, first, end, position, first == 0 ? 0 : thread_cpu_ns() - first_cpu);
}

}  // namespace

void init_archive(py::module_ &m) {
    PyObject *bases = PyTuple_Pack(2, AeronError, PyExc_ValueError);
    ArchiveDamageError = PyErr_NewExceptionWithDoc("tickline._aeron.ArchiveDamageError",
                                                   "A recorded segment or frame is damaged, truncated or missing.", bases, nullptr);
    Py_DECREF(bases);
    if (ArchiveDamageError == nullptr) throw py::error_already_set();
    m.add_object("ArchiveDamageError", py::handle(ArchiveDamageError));

    py::class_<Recorder, std::shared_ptr<Recorder>>(m, "Recorder",
        "Copies whole blocks of one image's term buffer into a recording's segment files (tickline.archive).")
        .def(py::init(&make_recorder), py::arg("subscription"), py::arg("session_id"), py::arg("dir"),
             py::arg("recording_id"), py::arg("segment_length"), py::arg("sync_each_segment") = false,
             py::arg("recording_start_position") = -1, py::arg("checksum") = 0,
             "checksum: 0 none, 1 CRC-32C of each data frame's payload in its reserved value.  "
             "segment_length: the configured length; a stream with longer terms gets one term per segment.  "
             "recording_start_position >= 0: extend a recording that started there (writing resumes at the image's position).")
        .def_property_readonly("recording_id", [](Recorder &r) { return r.g.recording_id; })
        .def_property_readonly("start_position", [](Recorder &r) { return r.g.start_position; })
        .def_property_readonly("position", [](Recorder &r) { return r.position; })
        .def_property_readonly("bytes_written", [](Recorder &r) { return r.bytes_written; })
        .def_property_readonly("term_length", [](Recorder &r) { return r.g.term_length; })
        .def_property_readonly("segment_length", [](Recorder &r) { return r.g.segment_length; })
        .def_property_readonly("initial_term_id", [](Recorder &r) { return r.g.initial_term_id; })
        .def_property_readonly("session_id", [](Recorder &r) { return r.g.session_id; })
        .def_property_readonly("mtu", [](Recorder &r) { return r.g.mtu; })
        .def_property_readonly("checksum", [](Recorder &r) { return r.g.checksum; })
        .def_readonly("source_identity", &Recorder::source_identity)
        .def("record", &Recorder::record, py::arg("block_limit"),
             "One block poll: bytes recorded, or -1 when the image is gone.  OSError (errno set) when a write failed.")
        .def("sync", &Recorder::sync, "fdatasync the current segment.")
        .def("close", &Recorder::close);

    py::class_<Replayer, std::shared_ptr<Replayer>>(m, "Replayer",
        "Offers a recording's frames, whole blocks at a time, to an exclusive publication (tickline.archive).")
        .def(py::init(&make_replayer), py::arg("publication"), py::arg("dir"), py::arg("recording_id"),
             py::arg("start_position"), py::arg("term_length"), py::arg("segment_length"), py::arg("initial_term_id"),
             py::arg("session_id"), py::arg("mtu"), py::arg("from_position"), py::arg("checksum") = 0,
             "checksum: the recording's (0 none, 1 CRC-32C): every data frame's is checked before it is offered.")
        .def_property_readonly("position", [](Replayer &r) { return r.position; })
        .def("replay", &Replayer::replay, py::arg("limit"), py::arg("max_bytes") = 1 << 16,
             "Offer one block below limit: bytes replayed, 0 (nothing / back pressure), -1 (publication closed).")
        .def("close", &Replayer::close);

    m.def("archive_crc32c", [](py::buffer b) {
        py::buffer_info info = b.request();
        if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1)) raise(PyExc_ValueError, "archive_crc32c takes contiguous bytes");
        return crc32c(static_cast<const uint8_t *>(info.ptr), static_cast<size_t>(info.size));
    }, py::arg("data"), "CRC-32C (Castagnoli) of data: the per-frame checksum of recordings that keep one.");
    m.def("archive_bench_offer", &bench_offer, py::arg("publication"), py::arg("length"), py::arg("count"),
          py::arg("max_seconds") = 60.0,
          "tickline bench archive's publisher: offer count messages of length bytes at full rate: "
          "(sent, start_ns, end_ns, back_pressured offers, position); clock: steady_clock (CLOCK_MONOTONIC).");
    m.def("archive_bench_drain", &bench_drain, py::arg("subscription"), py::arg("session_id"), py::arg("count"),
          py::arg("max_seconds") = 60.0, py::arg("any_image") = false,
          "tickline bench archive's subscriber: poll an image fragment by fragment until count fragments came: "
          "(fragments, payload bytes, first_ns, end_ns, position, cpu_ns from the first fragment).  any_image: the subscription's first image, "
          "whichever its session (session_id is then ignored).");
    m.def("archive_scan", [](const std::string &dir, int64_t recording_id, int64_t start_position, int32_t term_length,
                             int64_t segment_length, int32_t initial_term_id, int32_t session_id, int32_t mtu,
                             int64_t from_position, int64_t limit, int32_t checksum) {
        Geometry g{dir, recording_id, start_position, term_length, segment_length, initial_term_id, session_id, mtu, checksum};
        g.validate();
        if (from_position < start_position || (from_position & (kAlignment - 1)) != 0) {
            raise(PyExc_ValueError, "scan position must be frame aligned and not before the start: recording_id=" +
                                        std::to_string(recording_id) + " position=" + std::to_string(from_position));
        }
        ScanResult r;
        {
            py::gil_scoped_release nogil;  // touches only files
            r = scan(g, from_position, limit);
        }
        return py::make_tuple(r.position, r.damage.empty() ? py::object(py::none()) : py::object(py::str(r.damage)));
    }, py::arg("dir"), py::arg("recording_id"), py::arg("start_position"), py::arg("term_length"),
       py::arg("segment_length"), py::arg("initial_term_id"), py::arg("session_id"), py::arg("mtu"),
       py::arg("from_position"), py::arg("limit") = -1, py::arg("checksum") = 0,
       "Walk recorded frames from from_position: (end position of the last valid frame, damage description or None).");
}

}  // namespace tickline
