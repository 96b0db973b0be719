// The frame scanner of tickline.codecs.batch: walks a buffer of Aeron frames
// (a term buffer's bytes, an archive segment's), picks the unfragmented data
// frames that carry one SBE template, and copies each field of each one's
// root block straight into that field's column (numpy arrays the caller
// made): one pass over the frames, each frame's cache lines read once.
// Python decides everything else: the layout, the columns, the nulls, the
// errors' wording and whose fault.
//
// Every byte scanned is hostile: a frame is used only after its length is at
// least a header, its (aligned) end lies inside the buffer, and its message
// header and root block lie inside the frame.  The scan never reads past
// ``data``'s length and never writes past the output's capacity; on bad
// input it stops and returns the reason and the frame's offset.
//
// Frame header (little-endian, as on every host Aeron runs on): i32 frame
// length @0, u8 version @4, u8 flags @5, u16 type @6, i32 term offset @8,
// i32 session id @12, i32 stream id @16, i32 term id @20, i64 reserved @24.
// A frame length of 0 is where the written part of a term ends.
#include "tickline_aeron.h"

#include <cstring>
#include <string>
#include <vector>

namespace tickline {

namespace {

constexpr int64_t kFrameHeader = 32;
constexpr int64_t kFrameAlign = 32;
constexpr uint16_t kFramePad = 0;
constexpr uint16_t kFrameData = 1;
constexpr uint8_t kUnfragmented = 0xC0;  // BEGIN | END

// Where one member of the SBE message header is: byte offset and size inside
// the header, or offset < 0 when the schema fixes it as a constant.
struct HeaderMember {
    int64_t offset = -1;
    int64_t size = 0;
    uint64_t constant = 0;
};

struct Layout {
    int64_t header_length = 0;
    bool big_endian = false;
    HeaderMember block_length, template_id, schema_id, version;
};

uint64_t load_uint(const uint8_t *p, int64_t size, bool big_endian) {
    uint64_t v = 0;
    for (int64_t i = 0; i < size; ++i) {
        int64_t k = big_endian ? i : size - 1 - i;
        v = (v << 8) | p[k];
    }
    return v;
}

uint64_t header_value(const Layout &l, const HeaderMember &m, const uint8_t *hdr) {
    return m.offset < 0 ? m.constant : load_uint(hdr + m.offset, m.size, l.big_endian);
}

int32_t load_i32(const uint8_t *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

HeaderMember member_from(const py::tuple &t) {
    if (t.size() != 3) throw py::value_error("header member must be (offset, size, constant)");
    HeaderMember m;
    m.offset = t[0].cast<int64_t>();
    m.size = t[1].cast<int64_t>();
    m.constant = t[2].cast<uint64_t>();
    return m;
}

py::buffer_info flat(py::buffer &b, bool writable, const char *what) {
    py::buffer_info info = b.request(writable);
    if (info.ndim < 1) throw py::value_error(std::string(what) + " must be a buffer of at least one dimension");
    // C-contiguous: each stride is the product of the later dimensions.
    py::ssize_t expect = info.itemsize;
    for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
        if (info.strides[d] != expect) throw py::value_error(std::string(what) + " must be C-contiguous");
        expect *= info.shape[d];
    }
    return info;
}

// One output column: the field's offset and size in the root block, and the
// column's memory (capacity elements of size bytes).
struct Column {
    int64_t offset = 0;
    int64_t size = 0;
    uint8_t *out = nullptr;
};

struct ScanResult {
    const char *error = nullptr;  // nullptr: no fault found
    int64_t error_offset = -1;
    int64_t count = 0;           // records written
    int64_t next = 0;            // where the scan stopped: the end, a zero frame length, or a full output
    bool full = false;           // stopped because the output had no room for another record
    bool ended = false;          // stopped at a zero frame length
    int64_t padding = 0, other = 0, fragments = 0;
};

// The scan itself, over plain pointers: no Python objects, so it runs without the GIL.
ScanResult scan(const uint8_t *data, int64_t n, int64_t start, const Layout &l, uint64_t template_id, uint64_t schema_id,
                bool check_schema, const std::vector<Column> &columns, int64_t *offsets, uint16_t *meta,
                int64_t capacity) {
    ScanResult r;
    int64_t off = start;
    while (off < n) {
        int64_t room = n - off;
        if (room < 4) {
            r.error = "buffer ends inside a frame header";
            r.error_offset = off;
            break;
        }
        int32_t frame_length = load_i32(data + off);
        if (frame_length == 0) {
            r.ended = true;
            break;
        }
        if (frame_length < kFrameHeader) {
            r.error = "frame length below the frame header length";
            r.error_offset = off;
            break;
        }
        if (room < kFrameHeader) {
            r.error = "buffer ends inside a frame header";
            r.error_offset = off;
            break;
        }
        if (static_cast<int64_t>(frame_length) > room) {
            r.error = "frame runs past the end of the buffer";
            r.error_offset = off;
            break;
        }
        int64_t aligned = (static_cast<int64_t>(frame_length) + kFrameAlign - 1) & ~(kFrameAlign - 1);
        uint16_t type = load_u16(data + off + 6);
        if (type == kFramePad) {
            ++r.padding;
        } else if (type != kFrameData) {
            r.error = "unknown frame type";
            r.error_offset = off;
            break;
        } else if ((data[off + 5] & kUnfragmented) != kUnfragmented) {
            ++r.fragments;
        } else {
            int64_t payload = frame_length - kFrameHeader;
            const uint8_t *hdr = data + off + kFrameHeader;
            if (payload < l.header_length) {
                r.error = "data frame shorter than the SBE message header";
                r.error_offset = off;
                break;
            }
            bool mine = header_value(l, l.template_id, hdr) == template_id &&
                        (!check_schema || header_value(l, l.schema_id, hdr) == schema_id);
            if (!mine) {
                ++r.other;
            } else {
                uint64_t block = header_value(l, l.block_length, hdr);
                if (block > static_cast<uint64_t>(payload - l.header_length)) {
                    r.error = "message's root block runs past the end of its frame";
                    r.error_offset = off;
                    break;
                }
                if (r.count == capacity) {
                    r.full = true;
                    break;
                }
                const uint8_t *body = hdr + l.header_length;
                for (const Column &c : columns) {
                    uint8_t *dst = c.out + r.count * c.size;
                    // a field past a shorter (older) block is not in this message: zeros, Python fills its null
                    if (c.offset + c.size <= static_cast<int64_t>(block)) {
                        std::memcpy(dst, body + c.offset, static_cast<size_t>(c.size));
                    } else {
                        std::memset(dst, 0, static_cast<size_t>(c.size));
                    }
                }
                offsets[r.count] = off;
                uint64_t version = header_value(l, l.version, hdr);
                meta[2 * r.count] = static_cast<uint16_t>(block > 0xFFFF ? 0xFFFF : block);
                meta[2 * r.count + 1] = static_cast<uint16_t>(version > 0xFFFF ? 0xFFFF : version);
                ++r.count;
            }
        }
        off += aligned;  // may step past n for an unaligned last frame: the loop ends
    }
    r.next = off < n ? off : n;
    return r;
}

}  // namespace

void init_batch(py::module_ &m) {
    m.def(
        "batch_scan_frames",
        [](py::buffer data, int64_t start, py::tuple header, bool big_endian, uint64_t template_id, uint64_t schema_id,
           bool check_schema, py::list columns, py::buffer offsets, py::buffer meta) {
            if (header.size() != 5) throw py::value_error("header must be (length, blockLength, templateId, schemaId, version)");
            Layout l;
            l.header_length = header[0].cast<int64_t>();
            l.big_endian = big_endian;
            l.block_length = member_from(header[1].cast<py::tuple>());
            l.template_id = member_from(header[2].cast<py::tuple>());
            l.schema_id = member_from(header[3].cast<py::tuple>());
            l.version = member_from(header[4].cast<py::tuple>());
            if (l.header_length < 0 || l.header_length > 65535) throw py::value_error("header length out of range");
            for (const HeaderMember *hm : {&l.block_length, &l.template_id, &l.schema_id, &l.version}) {
                if (hm->offset >= 0 && (hm->size < 1 || hm->size > 8 || hm->offset > l.header_length - hm->size)) {
                    throw py::value_error("header member outside the header: offset=" + std::to_string(hm->offset) +
                                          " size=" + std::to_string(hm->size));
                }
            }
            py::buffer_info in = flat(data, false, "data");
            py::buffer_info offs = flat(offsets, true, "offsets");
            py::buffer_info mt = flat(meta, true, "meta");
            if (offs.itemsize != 8 || mt.itemsize != 2) throw py::value_error("offsets must hold int64, meta uint16");
            int64_t capacity = static_cast<int64_t>(offs.size);
            if (static_cast<int64_t>(mt.size) / 2 < capacity) capacity = static_cast<int64_t>(mt.size) / 2;
            // the column buffers stay acquired (their infos alive) until the scan returns
            std::vector<py::buffer_info> held;
            std::vector<Column> cols;
            held.reserve(columns.size());
            for (py::handle item : columns) {
                py::tuple t = item.cast<py::tuple>();
                if (t.size() != 3) throw py::value_error("column must be (offset, size, buffer)");
                Column c;
                c.offset = t[0].cast<int64_t>();
                c.size = t[1].cast<int64_t>();
                if (c.offset < 0 || c.size < 1 || c.offset > 65535 || c.size > 65535) {
                    throw py::value_error("column outside a root block: offset=" + std::to_string(c.offset) +
                                          " size=" + std::to_string(c.size));
                }
                py::buffer b = t[2].cast<py::buffer>();
                held.push_back(flat(b, true, "column"));
                const py::buffer_info &bi = held.back();
                int64_t bytes = static_cast<int64_t>(bi.size * bi.itemsize);
                if (bytes / c.size < capacity) capacity = bytes / c.size;
                c.out = static_cast<uint8_t *>(bi.ptr);
                cols.push_back(c);
            }
            int64_t n = static_cast<int64_t>(in.size * in.itemsize);
            if (start < 0 || start > n) throw py::value_error("start outside the data: start=" + std::to_string(start));
            ScanResult r;
            {
                py::gil_scoped_release release;
                r = scan(static_cast<const uint8_t *>(in.ptr), n, start, l, template_id, schema_id, check_schema, cols,
                         static_cast<int64_t *>(offs.ptr), static_cast<uint16_t *>(mt.ptr), capacity);
            }
            py::object error = r.error ? py::object(py::str(r.error)) : py::object(py::none());
            return py::make_tuple(error, r.error_offset, r.count, r.next, r.full, r.ended, r.padding, r.other, r.fragments);
        },
        py::arg("data"), py::arg("start"), py::arg("header"), py::arg("big_endian"), py::arg("template_id"),
        py::arg("schema_id"), py::arg("check_schema"), py::arg("columns"), py::arg("offsets"), py::arg("meta"),
        "Scan Aeron frames in data from start; for each unfragmented data frame of template_id copy each column's "
        "field of its root block (columns: [(offset, size, buffer)], zeros past a shorter block) into the column, its "
        "frame offset into offsets and (blockLength, version) into meta.  Returns (error, error_offset, count, next, "
        "full, ended, padding, other, fragments).");
}

}  // namespace tickline
