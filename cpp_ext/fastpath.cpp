// The hot paths: offer, try_claim, poll.  These are attached to the pybind11
// classes as raw METH_FASTCALL methods because pybind11's generic dispatch
// (argument conversion, overload resolution) costs more than the work itself.
//
// Zero-copy rules (documented on the Python side too):
// - a fragment handler gets a read-only memoryview over the log buffer; after
//   the handler returns the view, and every view made from it, is released,
//   so a view kept past the call raises ValueError instead of reading reused
//   memory (see "revoking views" for the one case that is copied instead);
// - the Header passed beside it is only a view of the frame during the call;
//   if the handler keeps it, it is frozen into a copy of the values;
// - poll_one() is not zero-copy: the fragment is consumed before Python reads
//   it, and the log behind the subscriber position is the driver's to clean,
//   so its view covers a copy the subscription owns ("pull-style polling");
// - a BufferClaim is a writable view of the claimed frame until commit/abort,
//   which release the memoryviews made of it;
// - a poll on the stack defers close() of its subscription or client to its
//   end (PollGuard) and delivers nothing after it.
#include "tickline_aeron.h"

extern "C" {
#include "aeron_image.h"  // aeron_header_t and the data header: the whole message's header is built from them
}

#include <algorithm>
#include <cstring>
#include <new>

namespace tickline {

namespace {

Client *checked_client(PyObject *self, const char *fn) { return checked_self<Client>(self, "Client", fn); }
Publication *checked_publication(PyObject *self, const char *fn) { return checked_self<Publication>(self, "Publication", fn); }
Subscription *checked_subscription(PyObject *self, const char *fn) { return checked_self<Subscription>(self, "Subscription", fn); }

// ---------------------------------------------------------------- Header

struct HeaderObject {
    PyObject_HEAD
    aeron_header_t *header;      // valid only during the handler call
    bool frozen;                 // values copied: valid forever
    aeron_header_values_t values;
    int64_t position;
};

PyTypeObject HeaderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

bool header_values(HeaderObject *h) {
    if (h->frozen) return true;
    if (h->header == nullptr) {
        PyErr_SetString(PyExc_ValueError, "header is not valid outside the fragment handler call");
        return false;
    }
    if (aeron_header_values(h->header, &h->values) < 0) {
        PyErr_SetString(AeronError, aeron_errmsg());
        return false;
    }
    return true;
}

void header_freeze(HeaderObject *h) {
    if (h->header != nullptr && !h->frozen) {
        aeron_header_values(h->header, &h->values);
        h->position = aeron_header_position(h->header);
        h->frozen = true;
    }
    h->header = nullptr;
}

#define HEADER_GETTER(name, expr)                                      \
    PyObject *header_##name(PyObject *self, void *) {                  \
        auto *h = reinterpret_cast<HeaderObject *>(self);              \
        if (!header_values(h)) return nullptr;                         \
        return PyLong_FromLongLong(static_cast<long long>(expr));      \
    }

HEADER_GETTER(session_id, h->values.frame.session_id)
HEADER_GETTER(stream_id, h->values.frame.stream_id)
HEADER_GETTER(term_id, h->values.frame.term_id)
HEADER_GETTER(term_offset, h->values.frame.term_offset)
HEADER_GETTER(flags, h->values.frame.flags)
HEADER_GETTER(frame_type, h->values.frame.type)
HEADER_GETTER(frame_length, h->values.frame.frame_length)
HEADER_GETTER(reserved_value, h->values.frame.reserved_value)
HEADER_GETTER(initial_term_id, h->values.initial_term_id)

PyObject *header_position(PyObject *self, void *) {
    auto *h = reinterpret_cast<HeaderObject *>(self);
    if (h->frozen) return PyLong_FromLongLong(h->position);
    if (h->header == nullptr) {
        PyErr_SetString(PyExc_ValueError, "header is not valid outside the fragment handler call");
        return nullptr;
    }
    return PyLong_FromLongLong(aeron_header_position(h->header));
}

PyObject *header_repr(PyObject *self) {
    auto *h = reinterpret_cast<HeaderObject *>(self);
    if (!header_values(h)) {
        PyErr_Clear();
        return PyUnicode_FromString("Header(<invalid outside the handler call>)");
    }
    int64_t pos = h->frozen ? h->position : aeron_header_position(h->header);
    return PyUnicode_FromFormat("Header(session_id=%d, stream_id=%d, term_id=%d, term_offset=%d, flags=0x%x, position=%lld)",
                                h->values.frame.session_id, h->values.frame.stream_id, h->values.frame.term_id,
                                h->values.frame.term_offset, (unsigned)h->values.frame.flags, (long long)pos);
}

PyGetSetDef header_getset[] = {
    {"session_id", header_session_id, nullptr, "session id of the publication that sent the fragment", nullptr},
    {"stream_id", header_stream_id, nullptr, "stream id", nullptr},
    {"term_id", header_term_id, nullptr, "term id of the frame", nullptr},
    {"term_offset", header_term_offset, nullptr, "offset of the frame in its term", nullptr},
    {"flags", header_flags, nullptr, "frame flags: 0x80 begin, 0x40 end, 0xC0 unfragmented", nullptr},
    {"frame_type", header_frame_type, nullptr, "frame type", nullptr},
    {"frame_length", header_frame_length, nullptr, "frame length including the 32-byte header", nullptr},
    {"reserved_value", header_reserved_value, nullptr, "the frame's 64-bit reserved value", nullptr},
    {"initial_term_id", header_initial_term_id, nullptr, "initial term id of the stream", nullptr},
    {"position", header_position, nullptr, "stream position just after this fragment", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyObject *header_new_object() {
    auto *h = PyObject_New(HeaderObject, &HeaderType);
    if (h == nullptr) return nullptr;
    h->header = nullptr;
    h->frozen = false;
    h->position = 0;
    std::memset(&h->values, 0, sizeof(h->values));
    return reinterpret_cast<PyObject *>(h);
}

// ---------------------------------------------------------------- revoking views
//
// CPython cannot take back memory it lent: a memoryview (and any view made
// from it: memoryview(v), slices, casts) keeps a raw pointer to the exporter's
// memory.  What can be done, and is done here when a region stops being ours
// (a fragment after its handler call or the next poll, a claim at commit,
// abort or close):
//   - every memoryview over the region's managed buffer is released: using it
//     raises ValueError (they are found through the garbage collector's
//     referrer lists: a walk of the heap, paid only when views were kept);
//   - a memoryview that cannot be released because it lent the memory on
//     again (an export to numpy, ctypes, ...) is pointed at a read-only
//     private copy of the bytes it saw (or zeros when the memory is already
//     gone), so it neither reads reused memory nor writes into a committed
//     frame;
//   - what such an export handed out (numpy's own pointer) cannot be
//     reached: that one case is refused where it can be (a claim with an
//     export not coming from a memoryview refuses commit/abort) and documented.
// All of this reads CPython's memoryview structs (Include/cpython/memoryobject.h,
// unchanged from 3.8 through 3.13); other versions only release the view itself.

PyObject *release_str = nullptr;
PyObject *get_referrers = nullptr;  // gc.get_referrers

#if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030E0000
#define TICKLINE_MEMORYVIEW_STRUCTS 1
#endif

// Releases one memoryview; false (error cleared) when it has exports.
bool release_memoryview(PyObject *mv) {
    PyObject *r = PyObject_CallMethodNoArgs(mv, release_str);
    if (r == nullptr) {
        PyErr_Clear();
        return false;
    }
    Py_DECREF(r);
    return true;
}

#ifdef TICKLINE_MEMORYVIEW_STRUCTS
// Revokes every memoryview over mbuf as described above; with_copy=false when
// the memory may already be unmapped (zeros instead of a copy).  Never leaves
// a Python error set.
void detach_managed_buffer(PyObject *mbuf_obj, bool with_copy) {
    auto *mbuf = reinterpret_cast<_PyManagedBufferObject *>(mbuf_obj);
    if (mbuf->flags & _Py_MANAGED_BUFFER_RELEASED) return;
    Py_INCREF(mbuf_obj);
    const char *old = static_cast<const char *>(mbuf->master.buf);
    Py_ssize_t len = mbuf->master.len;
    PyObject *copy = nullptr;
    PyObject *refs = PyObject_CallOneArg(get_referrers, mbuf_obj);
    if (refs == nullptr) PyErr_Clear();
    Py_ssize_t n = refs != nullptr ? PyList_GET_SIZE(refs) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(refs, i);
        if (!PyMemoryView_Check(r)) continue;
        auto *mv = reinterpret_cast<PyMemoryViewObject *>(r);
        if (mv->mbuf != mbuf || (mv->flags & _Py_MEMORYVIEW_RELEASED)) continue;
        if (mv->exports == 0 && release_memoryview(r)) continue;
        if (copy == nullptr) {
            copy = PyBytes_FromStringAndSize(nullptr, len);
            if (copy == nullptr) {
                PyErr_Clear();
                break;  // out of memory: nothing better to do
            }
            if (with_copy) std::memcpy(PyBytes_AS_STRING(copy), old, static_cast<size_t>(len));
            else std::memset(PyBytes_AS_STRING(copy), 0, static_cast<size_t>(len));
        }
        char *base = PyBytes_AS_STRING(copy);
        mv->view.buf = base + (static_cast<const char *>(mv->view.buf) - old);
        mv->view.readonly = 1;
    }
    Py_XDECREF(refs);
    if (!(mbuf->flags & _Py_MANAGED_BUFFER_RELEASED) && copy != nullptr) {
        // Views remain, pointed at the copy: the managed buffer lets go of the
        // exporter (a claim counts its exports down) and keeps the copy alive.
        PyBuffer_Release(&mbuf->master);
        mbuf->master.obj = copy;
        mbuf->master.buf = PyBytes_AS_STRING(copy);
        mbuf->master.readonly = 1;
        copy = nullptr;
    }
    Py_XDECREF(copy);
    Py_DECREF(mbuf_obj);
}
#endif

}  // namespace

void revoke_view(PyObject *view) {
    auto *m = reinterpret_cast<PyMemoryViewObject *>(view);
#ifdef TICKLINE_MEMORYVIEW_STRUCTS
    if (!(m->flags & _Py_MEMORYVIEW_RELEASED) && (m->mbuf->exports > 1 || m->exports > 0)) {
        detach_managed_buffer(reinterpret_cast<PyObject *>(m->mbuf), true);  // views were made from it
    } else if (Py_REFCNT(view) > 1) {
        release_memoryview(view);
    }
#else
    (void)m;
    if (Py_REFCNT(view) > 1) release_memoryview(view);
#endif
    Py_DECREF(view);
}

namespace {

// ---------------------------------------------------------------- BufferClaim

struct ClaimObject {
    PyObject_HEAD
    aeron_buffer_claim_t claim;
    bool active;
    Py_ssize_t exports;
    PyObject *owner;  // the Publication while active (a reference); it lists the claim in its claims
};

PyTypeObject ClaimType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject *closed_error(const char *what, const std::string &channel, int32_t stream_id, bool client_closed);

Publication *claim_publication(ClaimObject *c) {
    if (c->owner == nullptr) return nullptr;
    auto *inst = reinterpret_cast<py::detail::instance *>(c->owner);
    static const py::detail::type_info *tinfo = py::detail::get_type_info(typeid(Publication));
    return inst->get_value_and_holder(tinfo, false).value_ptr<Publication>();  // checked at try_claim
}

bool claim_usable(ClaimObject *c) {
    Publication *p = claim_publication(c);
    return c->active && p != nullptr && p->usable();
}

// The claim is over: no longer active, no longer listed by its publication.
void claim_end(ClaimObject *c) {
    c->active = false;
    if (Publication *p = claim_publication(c)) {
        auto &v = p->claims;
        v.erase(std::remove(v.begin(), v.end(), reinterpret_cast<PyObject *>(c)), v.end());
    }
    Py_CLEAR(c->owner);
}

// Revokes the memoryviews made over the claim (found through their managed
// buffers, which refer to the claim).
void revoke_claim_views(ClaimObject *c, bool with_copy) {
    if (c->exports == 0) return;
#ifdef TICKLINE_MEMORYVIEW_STRUCTS
    PyObject *refs = PyObject_CallOneArg(get_referrers, reinterpret_cast<PyObject *>(c));
    if (refs == nullptr) {
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(refs); i++) {
        PyObject *r = PyList_GET_ITEM(refs, i);
        if (Py_TYPE(r) != &_PyManagedBuffer_Type) continue;
        if (reinterpret_cast<_PyManagedBufferObject *>(r)->master.obj != reinterpret_cast<PyObject *>(c)) continue;
        detach_managed_buffer(r, with_copy);
    }
    Py_DECREF(refs);
#else
    (void)with_copy;
#endif
}

PyObject *claim_new(PyTypeObject *type, PyObject *, PyObject *) {
    auto *c = reinterpret_cast<ClaimObject *>(type->tp_alloc(type, 0));
    if (c != nullptr) {
        std::memset(&c->claim, 0, sizeof(c->claim));
        c->active = false;
        c->exports = 0;
        c->owner = nullptr;
    }
    return reinterpret_cast<PyObject *>(c);
}

void claim_dealloc(PyObject *self) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    if (claim_usable(c)) {
        // A claim dropped without commit or abort would stall the stream for
        // every subscriber; abort it so the log stays consumable.  (No view
        // of it is left: each would hold a reference to it.)
        aeron_buffer_claim_abort(&c->claim);
    }
    claim_end(c);
    Py_TYPE(self)->tp_free(self);
}

int claim_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    if (!claim_usable(c)) {
        PyErr_SetString(PyExc_BufferError,
                        "buffer claim is not active: try_claim did not succeed, commit/abort was called, or its publication was closed");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, c->claim.data, static_cast<Py_ssize_t>(c->claim.length), 0, flags) < 0) return -1;
    c->exports++;
    return 0;
}

void claim_releasebuffer(PyObject *self, Py_buffer *) {
    reinterpret_cast<ClaimObject *>(self)->exports--;
}

PyBufferProcs claim_as_buffer = {claim_getbuffer, claim_releasebuffer};

PyObject *claim_finish(PyObject *self, bool commit) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    const char *what = commit ? "commit" : "abort";
    if (!c->active) {
        PyErr_SetString(PyExc_ValueError, "buffer claim is not active: try_claim did not succeed, or commit/abort was already called");
        return nullptr;
    }
    Publication *p = claim_publication(c);
    if (!p->usable()) {
        // Its client is closing (a handler closed it; the log goes when the
        // poll ends): views of the claim see zeros from now on.
        std::string channel = p->channel;  // claim_end may drop the last reference to p
        int32_t stream_id = p->stream_id;
        bool client_closed = p->client->closed;
        revoke_claim_views(c, false);
        claim_end(c);
        return closed_error("publication", channel, stream_id, client_closed);
    }
    // Memoryviews of the claim must not write into the frame once subscribers
    // may read it (commit) or the term is reused (abort).
    revoke_claim_views(c, true);
    if (c->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "buffer claim %s refused: exports=%zd of the claim are still held and cannot be revoked "
                     "(e.g. a numpy array over it) fault=user: release them, then %s again",
                     what, c->exports, what);
        return nullptr;
    }
    int rc = commit ? aeron_buffer_claim_commit(&c->claim) : aeron_buffer_claim_abort(&c->claim);
    claim_end(c);
    if (rc < 0) {
        PyErr_Format(PublicationError, "buffer claim %s failed: error=%s", what, aeron_errmsg());
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject *claim_commit(PyObject *self, PyObject *) { return claim_finish(self, true); }
PyObject *claim_abort(PyObject *self, PyObject *) { return claim_finish(self, false); }

PyObject *claim_enter(PyObject *self, PyObject *) {
    Py_INCREF(self);
    return self;
}

PyObject *claim_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    if (c->active) {
        bool ok = nargs < 1 || args[0] == Py_None;
        PyObject *r = claim_finish(self, ok);
        if (r == nullptr) return nullptr;
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

Py_ssize_t claim_len(PyObject *self) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    return claim_usable(c) ? static_cast<Py_ssize_t>(c->claim.length) : 0;
}

PyObject *claim_is_active(PyObject *self, void *) {
    return PyBool_FromLong(claim_usable(reinterpret_cast<ClaimObject *>(self)));
}

bool claim_check_usable(ClaimObject *c) {
    if (!claim_usable(c)) {
        PyErr_SetString(PyExc_ValueError, "buffer claim is not active");
        return false;
    }
    return true;
}

PyObject *claim_get_reserved(PyObject *self, void *) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    if (!claim_check_usable(c)) return nullptr;
    int64_t v;
    std::memcpy(&v, c->claim.frame_header + 24, sizeof(v));  // reserved value field of the data frame header
    return PyLong_FromLongLong(v);
}

int claim_set_reserved(PyObject *self, PyObject *value, void *) {
    auto *c = reinterpret_cast<ClaimObject *>(self);
    if (!claim_check_usable(c)) return -1;
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred()) return -1;
    int64_t v64 = v;
    std::memcpy(c->claim.frame_header + 24, &v64, sizeof(v64));
    return 0;
}

PyMethodDef claim_methods[] = {
    {"commit", claim_commit, METH_NOARGS, "Publish the claimed message to subscribers; memoryviews of the claim are released."},
    {"abort", claim_abort, METH_NOARGS, "Give the claimed space up (subscribers skip it as padding); memoryviews of the claim are released."},
    {"__enter__", claim_enter, METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(claim_exit)), METH_FASTCALL, "Commit on success, abort when the block raised."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef claim_getset[] = {
    {"is_active", claim_is_active, nullptr, "True between a successful try_claim and commit/abort (and while its publication is open)", nullptr},
    {"reserved_value", claim_get_reserved, claim_set_reserved, "the frame's 64-bit reserved value", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PySequenceMethods claim_as_sequence = {claim_len};

}  // namespace

void revoke_claims(Publication &p) {
    std::vector<PyObject *> claims = p.claims;
    for (PyObject *o : claims) {
        Py_INCREF(o);
        auto *c = reinterpret_cast<ClaimObject *>(o);
        revoke_claim_views(c, false);  // the log is about to go: views see zeros
        claim_end(c);
        Py_DECREF(o);
    }
}

namespace {

// ---------------------------------------------------------------- reassembly

// tickline's own reassembly of fragmented messages (see Reassembly in
// tickline_aeron.h for the memory bound).  A fragment is BEGIN, middle, END or
// both (unfragmented).  Fragments of a message whose BEGIN was never seen
// (joined mid-message, or the partial was dropped) are skipped.  deliver gets
// each whole message and returns the poll action; ABORT rolls the END fragment
// back out of the partial so the same fragment can come again.

// Frame flags of Aeron's data header (the wire protocol; not in aeronc.h).
constexpr uint8_t kFrameBegin = 0x80;
constexpr uint8_t kFrameEnd = 0x40;
constexpr uint8_t kFrameWhole = kFrameBegin | kFrameEnd;

// The largest message Aeron lets a publication send on a stream of this term
// length: min(16 MiB, term length / 8).
size_t max_message_length(const aeron_header_values_t &v) {
    size_t shift = v.position_bits_to_shift;
    if (shift < 16 || shift > 30) return 16u << 20;  // not a valid term length: the largest bound
    size_t term = size_t{1} << shift;
    return std::min<size_t>(16u << 20, term / 8);
}

static_assert(sizeof(aeron_data_header_t) == sizeof(Reassembly::Partial::first_frame), "data header size");

// The log space a message of length bytes takes when fragmented into frames
// of max_payload bytes (each frame a data header plus payload, 32-aligned).
int32_t fragmented_frame_length(size_t length, size_t max_payload) {
    constexpr size_t hdr = sizeof(aeron_data_header_t);
    size_t full = length / max_payload;
    size_t rest = length % max_payload;
    size_t last = rest > 0 ? (rest + hdr + 31) & ~size_t{31} : 0;
    return static_cast<int32_t>(full * (max_payload + hdr) + last);  // <= 16 MiB plus headers
}

Reassembly::Partial *find_partial(Reassembly &r, int32_t session_id, const void *owner) {
    for (auto &p : r.partials) {
        if (p.session_id == session_id && p.owner == owner) return &p;
    }
    return nullptr;
}

// Ends a partial: its buffer becomes the spare (when not above kSpareMax and
// larger than the spare) or is freed.
void end_partial(Reassembly &r, Reassembly::Partial *p) {
    if (p->cap <= Reassembly::kSpareMax && p->cap > r.spare_cap) {
        r.spare = std::move(p->buf);
        r.spare_cap = p->cap;
    }
    size_t i = static_cast<size_t>(p - r.partials.data());
    if (i + 1 != r.partials.size()) r.partials[i] = std::move(r.partials.back());
    r.partials.pop_back();
}

void drop_partial(Reassembly &r, Reassembly::Partial *p) {
    r.dropped++;
    end_partial(r, p);
}

// Appends a fragment; false (nothing appended) when the message would pass
// max bytes or memory ran out.  Overflow-safe: len <= cap <= max.
bool append_fragment(Reassembly::Partial &p, const uint8_t *src, size_t n, size_t max) {
    if (n > max || p.len > max - n) return false;
    size_t need = p.len + n;
    if (need > p.cap) {
        size_t cap = std::max(need, std::min(max, std::max<size_t>(4096, p.cap * 2)));
        std::unique_ptr<uint8_t[]> grown(new (std::nothrow) uint8_t[cap]);
        if (!grown) return false;
        if (p.len > 0) std::memcpy(grown.get(), p.buf.get(), p.len);
        p.buf = std::move(grown);
        p.cap = cap;
    }
    if (n > 0) std::memcpy(p.buf.get() + p.len, src, n);
    p.len = need;
    return true;
}

template <class Deliver>
aeron_controlled_fragment_handler_action_t reassemble(Reassembly &r, const void *owner, const uint8_t *buffer,
                                                      size_t length, aeron_header_t *header, Deliver deliver) {
    aeron_header_values_t v;
    if (aeron_header_values(header, &v) < 0) return deliver(buffer, length, header);
    const uint8_t flags = v.frame.flags;
    const int32_t session_id = v.frame.session_id;
    if ((flags & kFrameWhole) == kFrameWhole) {
        aeron_controlled_fragment_handler_action_t action = deliver(buffer, length, header);
        if (action != AERON_ACTION_ABORT && !r.partials.empty()) {
            // A whole message after an unfinished one: the unfinished one is lost.
            if (Reassembly::Partial *p = find_partial(r, session_id, owner)) drop_partial(r, p);
        }
        return action;
    }
    const size_t max = max_message_length(v);
    Reassembly::Partial *p = find_partial(r, session_id, owner);
    if (flags & kFrameBegin) {
        if (p != nullptr) {
            r.dropped++;  // a new message before the last one ended
            p->len = 0;
        } else {
            r.partials.emplace_back();
            p = &r.partials.back();
            p->session_id = session_id;
            p->owner = owner;
            if (r.spare) {
                p->buf = std::move(r.spare);
                p->cap = r.spare_cap;
                r.spare_cap = 0;
            }
        }
        std::memcpy(p->first_frame, header->frame, sizeof(p->first_frame));
        if (!append_fragment(*p, buffer, length, max)) drop_partial(r, p);
        return AERON_ACTION_CONTINUE;
    }
    if (p == nullptr) return AERON_ACTION_CONTINUE;  // its BEGIN was never seen
    if (!append_fragment(*p, buffer, length, max)) {
        drop_partial(r, p);
        return AERON_ACTION_CONTINUE;
    }
    if (!(flags & kFrameEnd)) return AERON_ACTION_CONTINUE;
    // The whole message's header: the BEGIN fragment's, flagged BEGIN|END,
    // its frame length the message's, its position after the last fragment.
    aeron_data_header_t frame;
    std::memcpy(&frame, p->first_frame, sizeof(frame));
    const int32_t first_length = frame.frame_header.frame_length;
    const size_t first_frame = first_length > 0 ? static_cast<size_t>(first_length) : 0;
    frame.frame_header.frame_length = static_cast<int32_t>(sizeof(aeron_data_header_t) + p->len);
    frame.frame_header.flags |= flags;
    aeron_header_t whole = *header;
    whole.frame = &frame;
    if (first_frame > sizeof(aeron_data_header_t)) {
        whole.fragmented_frame_length = fragmented_frame_length(p->len, first_frame - sizeof(aeron_data_header_t));
    }
    aeron_controlled_fragment_handler_action_t action = deliver(p->buf.get(), p->len, &whole);
    if (action == AERON_ACTION_ABORT) {
        p->len -= length;  // this END fragment comes again
        return action;
    }
    end_partial(r, p);
    return action;
}

// Discards the partial messages of s's sessions that have no image any more,
// when s has lost an image since the last look (one atomic load otherwise).
void prune_gone_sessions(Reassembly &r, Subscription &s) {
    if (r.partials.empty() || s.sub == nullptr) return;
    uint64_t gone = s.events->unavailable.load(std::memory_order_acquire);
    if (r.seen_owner == &s && r.seen_unavailable == gone) return;
    r.seen_owner = &s;
    r.seen_unavailable = gone;
    for (size_t i = r.partials.size(); i-- > 0;) {
        Reassembly::Partial &p = r.partials[i];
        if (p.owner != &s) continue;
        aeron_image_t *image = aeron_subscription_image_by_session_id(s.sub, p.session_id);
        if (image != nullptr) {
            aeron_subscription_image_release(s.sub, image);
            continue;
        }
        drop_partial(r, &p);
    }
}

PyObject *reassembly_stats(const Reassembly &r) {
    return Py_BuildValue("{s:n,s:n,s:K}", "bytes", static_cast<Py_ssize_t>(r.bytes()), "sessions",
                         static_cast<Py_ssize_t>(r.partials.size()), "dropped",
                         static_cast<unsigned long long>(r.dropped));
}

// ---------------------------------------------------------------- FragmentAssembler

// Reassembles fragmented messages before calling the handler (see
// reassemble above); a controlled delegate, so an exception from the handler
// can stop the poll (BREAK) instead of being swallowed.
struct AssemblerObject {
    PyObject_HEAD
    Reassembly *reasm;
    PyObject *handler;
    bool controlled;
    bool polling;  // in a poll now: the same assembler doesn't nest
};

PyTypeObject AssemblerType = {PyVarObject_HEAD_INIT(nullptr, 0)};

struct PollContext {
    PyObject *handler;
    Subscription *sub;        // owner of the reusable header and view
    PyObject **header_slot;   // where the reusable Header lives
    bool controlled;
    bool failed;
    PyObject **view_slot;     // where the reusable memoryview lives
};

// A memoryview costs two allocations (the view and its managed buffer).  When
// the handler kept no reference to the view, its slices or exports, the same
// object is pointed at the next fragment instead.  That rewrites fields of
// CPython's memoryview structs (Include/cpython/memoryobject.h, unchanged
// from 3.8 through 3.13); other versions always allocate.
#if PY_VERSION_HEX >= 0x03080000 && PY_VERSION_HEX < 0x030E0000
#define TICKLINE_REUSE_VIEWS 1
#endif

PyObject *view_for(PyObject **slot, const uint8_t *buffer, size_t length) {
    auto *data = const_cast<char *>(reinterpret_cast<const char *>(buffer));
    auto len = static_cast<Py_ssize_t>(length);
#ifdef TICKLINE_REUSE_VIEWS
    PyObject *mv = *slot;
    if (mv != nullptr) {
        auto *m = reinterpret_cast<PyMemoryViewObject *>(mv);
        m->view.buf = data;
        m->view.len = len;
        m->view.shape[0] = len;
        m->hash = -1;
        m->mbuf->master.buf = data;
        m->mbuf->master.len = len;
        Py_INCREF(mv);
        return mv;
    }
    mv = PyMemoryView_FromMemory(data, len, PyBUF_READ);
    if (mv != nullptr) {
        Py_INCREF(mv);
        *slot = mv;  // the slot's reference
    }
    return mv;
#else
    (void)slot;
    return PyMemoryView_FromMemory(data, len, PyBUF_READ);
#endif
}

// After the handler: a view nobody else holds goes back to the slot; a view
// the handler kept, or made other views from, is revoked (see revoke_view), so
// later use raises ValueError rather than reading memory the log reuses.
void finish_view(PyObject **slot, PyObject *view) {
#ifdef TICKLINE_REUSE_VIEWS
    auto *m = reinterpret_cast<PyMemoryViewObject *>(view);
    if (Py_REFCNT(view) == 2 && m->exports == 0 && Py_REFCNT(reinterpret_cast<PyObject *>(m->mbuf)) == 1) {
        Py_DECREF(view);  // back to the slot's single reference
        return;
    }
    if (*slot == view) {
        *slot = nullptr;
        Py_DECREF(view);  // the slot's reference
    }
#else
    (void)slot;
#endif
    revoke_view(view);
}

aeron_controlled_fragment_handler_action_t deliver(PollContext *ctx, const uint8_t *buffer, size_t length,
                                                   aeron_header_t *header) {
    if (ctx->failed) return AERON_ACTION_ABORT;
    // Closed by an earlier handler call of this poll (the subscription or its
    // client): nothing more is delivered.
    if (!ctx->sub->usable()) return AERON_ACTION_ABORT;
    PyObject *hdr = *ctx->header_slot;
    if (hdr == nullptr) {
        hdr = header_new_object();
        if (hdr == nullptr) {
            ctx->failed = true;
            return AERON_ACTION_ABORT;
        }
        *ctx->header_slot = hdr;
    }
    auto *h = reinterpret_cast<HeaderObject *>(hdr);
    h->header = header;
    h->frozen = false;
    PyObject *view = view_for(ctx->view_slot, buffer, length);
    if (view == nullptr) {
        ctx->failed = true;
        return AERON_ACTION_ABORT;
    }
    PyObject *args[2] = {view, hdr};
    PyObject *result = PyObject_Vectorcall(ctx->handler, args, 2, nullptr);
    // The handler's exception (if any) is parked while the view is released:
    // its traceback may hold the view, and calling release() needs a clean
    // error state.
    PyObject *exc_type = nullptr, *exc_value = nullptr, *exc_tb = nullptr;
    if (result == nullptr) PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    finish_view(ctx->view_slot, view);
    if (Py_REFCNT(hdr) > 1) {
        header_freeze(h);  // kept by the handler: it becomes a copy
        Py_DECREF(hdr);
        *ctx->header_slot = nullptr;
    } else {
        h->header = nullptr;
    }
    if (result == nullptr) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
        // The fragment that raised counts as consumed; the poll stops and the
        // exception reaches the caller.  Fragments after it stay for the next poll.
        ctx->failed = true;
        return AERON_ACTION_BREAK;
    }
    aeron_controlled_fragment_handler_action_t action = AERON_ACTION_CONTINUE;
    if (ctx->controlled && result != Py_None) {
        long a = PyLong_AsLong(result);
        if (a < AERON_ACTION_ABORT || a > AERON_ACTION_CONTINUE) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError,
                             "controlled handler returned an invalid action: value=%R expected=ABORT(1)|BREAK(2)|COMMIT(3)|CONTINUE(4)|None",
                             result);
            }
            Py_DECREF(result);
            ctx->failed = true;
            return AERON_ACTION_ABORT;
        }
        action = static_cast<aeron_controlled_fragment_handler_action_t>(a);
    }
    Py_DECREF(result);
    return action;
}

aeron_controlled_fragment_handler_action_t on_fragment(void *clientd, const uint8_t *buffer, size_t length,
                                                       aeron_header_t *header) {
    return deliver(static_cast<PollContext *>(clientd), buffer, length, header);
}

// The fragment handler of a poll through a FragmentAssembler: clientd is the
// AssemblerObject; the current poll context is parked for the duration of the
// poll.
thread_local PollContext *current_assembler_ctx = nullptr;

aeron_controlled_fragment_handler_action_t on_assembler_fragment(void *clientd, const uint8_t *buffer, size_t length,
                                                                 aeron_header_t *header) {
    auto *a = static_cast<AssemblerObject *>(clientd);
    PollContext *outer = current_assembler_ctx;
    return reassemble(*a->reasm, outer->sub, buffer, length, header,
                      [a, outer](const uint8_t *b, size_t n, aeron_header_t *h) {
                          PollContext inner{a->handler, outer->sub, outer->header_slot, a->controlled, false,
                                            outer->view_slot};
                          aeron_controlled_fragment_handler_action_t action = deliver(&inner, b, n, h);
                          if (inner.failed) outer->failed = true;
                          return action;
                      });
}

PyObject *assembler_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static const char *kwlist[] = {"handler", "controlled", nullptr};
    PyObject *handler;
    int controlled = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", const_cast<char **>(kwlist), &handler, &controlled)) return nullptr;
    if (!PyCallable_Check(handler)) {
        PyErr_Format(PyExc_TypeError, "handler must be callable: handler=%R", handler);
        return nullptr;
    }
    auto *a = reinterpret_cast<AssemblerObject *>(type->tp_alloc(type, 0));
    if (a == nullptr) return nullptr;
    a->reasm = new (std::nothrow) Reassembly();
    if (a->reasm == nullptr) {
        Py_DECREF(a);
        return PyErr_NoMemory();
    }
    Py_INCREF(handler);
    a->handler = handler;
    a->controlled = controlled != 0;
    a->polling = false;
    return reinterpret_cast<PyObject *>(a);
}

void assembler_dealloc(PyObject *self) {
    auto *a = reinterpret_cast<AssemblerObject *>(self);
    delete a->reasm;
    Py_XDECREF(a->handler);
    Py_TYPE(self)->tp_free(self);
}

PyObject *assembler_get_handler(PyObject *self, void *) {
    auto *a = reinterpret_cast<AssemblerObject *>(self);
    Py_INCREF(a->handler);
    return a->handler;
}

PyObject *assembler_get_stats(PyObject *self, void *) {
    return reassembly_stats(*reinterpret_cast<AssemblerObject *>(self)->reasm);
}

PyGetSetDef assembler_getset[] = {
    {"handler", assembler_get_handler, nullptr, "the handler that receives whole messages", nullptr},
    {"reassembly", assembler_get_stats, nullptr,
     "{'bytes': buffer bytes held for partial messages (and the one spare), 'sessions': sessions with a message "
     "in progress, 'dropped': partial messages discarded (image gone, too long, broken sequence)}",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// ---------------------------------------------------------------- argument helpers

bool arg_count(const char *fn, Py_ssize_t nargs, Py_ssize_t lo, Py_ssize_t hi) {
    if (nargs < lo || nargs > hi) {
        if (lo == hi) {
            PyErr_Format(PyExc_TypeError, "%s() takes %zd positional arguments: given=%zd", fn, lo, nargs);
        } else {
            PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd positional arguments: given=%zd", fn, lo, hi, nargs);
        }
        return false;
    }
    return true;
}

// A whole-number argument (an int, or anything with __index__) in [lo, hi].  The range is checked
// before narrowing: a number beyond a long is out of range too (ValueError, not OverflowError).
// The messages name the method and the argument: "poll() argument fragment_limit out of range:
// fragment_limit=0 expected=1..1048576 fault=user".
bool count_arg(PyObject *o, const char *fn, const char *name, long lo, long hi, long *out) {
    if (!PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s() argument %s must be int: type=%s fault=user", fn, name, Py_TYPE(o)->tp_name);
        return false;
    }
    PyObject *n = PyNumber_Index(o);
    if (n == nullptr) return false;
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(n, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(n);
        return false;
    }
    if (overflow != 0 || v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s() argument %s out of range: %s=%R expected=%ld..%ld fault=user", fn, name, name,
                     n, lo, hi);
        Py_DECREF(n);
        return false;
    }
    Py_DECREF(n);
    *out = v;
    return true;
}

constexpr long kMaxFragmentLimit = 1 << 20;

PyObject *closed_error(const char *what, const std::string &channel, int32_t stream_id, bool client_closed) {
    PyErr_Format(ClosedError, "%s is closed: channel=%s stream_id=%d reason=%s", what, channel.c_str(), stream_id,
                 client_closed ? "client closed" : "closed by user");
    return nullptr;
}

inline int64_t do_offer(Publication *p, const uint8_t *data, size_t len) {
    return p->xpub != nullptr ? aeron_exclusive_publication_offer(p->xpub, data, len, nullptr, nullptr)
                              : aeron_publication_offer(p->pub, data, len, nullptr, nullptr);
}

PyObject *offer_error(Publication *p, size_t len) {
    if (len > p->max_message_length) {
        PyErr_Format(PublicationError,
                     "message too large: length=%zu max_message_length=%zu channel=%s stream_id=%d",
                     len, p->max_message_length, p->channel.c_str(), p->stream_id);
    } else {
        PyErr_Format(PublicationError, "offer failed: length=%zu channel=%s stream_id=%d error=%s", len,
                     p->channel.c_str(), p->stream_id, aeron_errmsg());
    }
    return nullptr;
}

// ---------------------------------------------------------------- Publication fast calls

// offer(buffer[, offset[, length]]) -> position (> 0) or a negative status code
PyObject *pub_offer(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("offer", nargs, 1, 3)) return nullptr;
    Publication *p = checked_publication(self, "offer");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    PyObject *obj = args[0];
    const uint8_t *data;
    Py_ssize_t size;
    Py_buffer view;
    bool have_view = false;
    if (PyBytes_CheckExact(obj)) {
        data = reinterpret_cast<const uint8_t *>(PyBytes_AS_STRING(obj));
        size = PyBytes_GET_SIZE(obj);
    } else {
        if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) return nullptr;
        have_view = true;
        data = static_cast<const uint8_t *>(view.buf);
        size = view.len;
    }
    Py_ssize_t offset = 0, length = size;
    if (nargs >= 2) {
        offset = PyLong_AsSsize_t(args[1]);
        if (offset == -1 && PyErr_Occurred()) goto fail;
        length = size - offset;
    }
    if (nargs == 3) {
        length = PyLong_AsSsize_t(args[2]);
        if (length == -1 && PyErr_Occurred()) goto fail;
    }
    if (offset < 0 || length < 0 || offset > size || length > size - offset) {
        PyErr_Format(PyExc_ValueError, "offset/length outside the buffer: offset=%zd length=%zd buffer_length=%zd",
                     offset, length, size);
        goto fail;
    }
    {
        int64_t r = do_offer(p, data + offset, static_cast<size_t>(length));
        if (have_view) PyBuffer_Release(&view);
        if (r == AERON_PUBLICATION_ERROR) return offer_error(p, static_cast<size_t>(length));
        return PyLong_FromLongLong(r);
    }
fail:
    if (have_view) PyBuffer_Release(&view);
    return nullptr;
}

// offer_batch(messages) -> number offered; stops at the first message not
// accepted (back pressure etc.), so the caller retries from that index.
PyObject *pub_offer_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("offer_batch", nargs, 1, 1)) return nullptr;
    Publication *p = checked_publication(self, "offer_batch");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    PyObject *seq = PySequence_Fast(args[0], "offer_batch() needs a sequence of bytes-like messages");
    if (seq == nullptr) return nullptr;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t i = 0;
    for (; i < n; i++) {
        PyObject *obj = items[i];
        int64_t r;
        size_t len;
        if (PyBytes_CheckExact(obj)) {
            len = static_cast<size_t>(PyBytes_GET_SIZE(obj));
            r = do_offer(p, reinterpret_cast<const uint8_t *>(PyBytes_AS_STRING(obj)), len);
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
                Py_DECREF(seq);
                return nullptr;
            }
            len = static_cast<size_t>(view.len);
            r = do_offer(p, static_cast<const uint8_t *>(view.buf), len);
            PyBuffer_Release(&view);
        }
        if (r < 0) {
            if (r == AERON_PUBLICATION_ERROR) {
                Py_DECREF(seq);
                return offer_error(p, len);
            }
            break;
        }
    }
    Py_DECREF(seq);
    return PyLong_FromSsize_t(i);
}

// offer_repeat(buffer, count) -> number offered: the same message count times
// in one call (throughput tests, heartbeats); stops at the first refusal.
PyObject *pub_offer_repeat(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("offer_repeat", nargs, 2, 2)) return nullptr;
    Publication *p = checked_publication(self, "offer_repeat");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) return nullptr;
    if (count < 0) {
        PyErr_Format(PyExc_ValueError, "count must be >= 0: count=%zd", count);
        return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    Py_ssize_t i = 0;
    for (; i < count; i++) {
        int64_t r = do_offer(p, static_cast<const uint8_t *>(view.buf), static_cast<size_t>(view.len));
        if (r < 0) {
            if (r == AERON_PUBLICATION_ERROR) {
                PyBuffer_Release(&view);
                return offer_error(p, static_cast<size_t>(view.len));
            }
            break;
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(i);
}

// ---- offer_frames (feed fast path: many encoded messages from one buffer)
//
// offer_frames(buffer, offset, frame_length, count) -> number offered: the
// count messages of frame_length bytes lying back to back in buffer from
// offset, each offered as its own message (a subscriber sees one fragment per
// message, as with offer_batch), in one call with one buffer export instead
// of one a message.  Stops at the first refusal (back pressure, not
// connected, closed, max position) and returns how many went, so the caller
// retries from that index; an ADMIN_ACTION (the log rotated to its next term)
// is retried at once, at most kFrameAdminRetries times a message, as Aeron
// asks.  Every range is checked before the first offer, without overflow:
// offset + frame_length * count <= len(buffer), frame_length in
// 0..max_message_length.  The buffer export is released before returning and
// no Python code runs while it is held.
constexpr int kFrameAdminRetries = 4;

bool frame_index_arg(PyObject *o, const char *name, Py_ssize_t *out) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "offer_frames() argument %s must be int: type=%s fault=user", name,
                     Py_TYPE(o)->tp_name);
        return false;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return false;
    if (overflow != 0 || v < 0 || v > PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_ValueError, "offer_frames() argument out of range: argument=%s value=%R expected=0..%zd "
                     "fault=user", name, o, PY_SSIZE_T_MAX);
        return false;
    }
    *out = static_cast<Py_ssize_t>(v);
    return true;
}

PyObject *pub_offer_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("offer_frames", nargs, 4, 4)) return nullptr;
    Publication *p = checked_publication(self, "offer_frames");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    Py_ssize_t offset = 0, frame_length = 0, count = 0;
    if (!frame_index_arg(args[1], "offset", &offset) || !frame_index_arg(args[2], "frame_length", &frame_length) ||
        !frame_index_arg(args[3], "count", &count))
        return nullptr;
    if (static_cast<size_t>(frame_length) > p->max_message_length) {
        PyErr_Format(PyExc_ValueError,
                     "offer_frames() frame too large: frame_length=%zd max_message_length=%zu channel=%s stream_id=%d "
                     "fault=user", frame_length, p->max_message_length, p->channel.c_str(), p->stream_id);
        return nullptr;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    size_t bytes = 0, end = 0;
    if (__builtin_mul_overflow(static_cast<size_t>(frame_length), static_cast<size_t>(count), &bytes) ||
        __builtin_add_overflow(static_cast<size_t>(offset), bytes, &end) || end > static_cast<size_t>(view.len)) {
        PyErr_Format(PyExc_ValueError,
                     "offer_frames() frames outside the buffer: offset=%zd frame_length=%zd count=%zd "
                     "buffer_length=%zd fault=user", offset, frame_length, count, view.len);
        PyBuffer_Release(&view);
        return nullptr;
    }
    const uint8_t *at = static_cast<const uint8_t *>(view.buf) + offset;
    const size_t len = static_cast<size_t>(frame_length);
    Py_ssize_t i = 0;
    for (; i < count; i++, at += len) {
        int64_t r = do_offer(p, at, len);
        for (int retry = 0; r == AERON_PUBLICATION_ADMIN_ACTION && retry < kFrameAdminRetries; retry++)
            r = do_offer(p, at, len);
        if (r < 0) {
            if (r == AERON_PUBLICATION_ERROR) {
                PyBuffer_Release(&view);
                return offer_error(p, len);
            }
            break;
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(i);
}
// ---- end offer_frames

// try_claim(length, claim) -> position (> 0) or a negative status code
PyObject *pub_try_claim(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("try_claim", nargs, 2, 2)) return nullptr;
    Publication *p = checked_publication(self, "try_claim");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    if (Py_TYPE(args[1]) != &ClaimType) {
        PyErr_Format(PyExc_TypeError, "try_claim() needs a BufferClaim: claim=%R", args[1]);
        return nullptr;
    }
    auto *c = reinterpret_cast<ClaimObject *>(args[1]);
    if (c->active) {
        PyErr_SetString(PyExc_ValueError, "buffer claim is still active: commit or abort it before claiming again");
        return nullptr;
    }
    Py_ssize_t length = PyLong_AsSsize_t(args[0]);
    if (length == -1 && PyErr_Occurred()) return nullptr;
    if (length < 0 || static_cast<size_t>(length) > p->max_payload_length) {
        PyErr_Format(PyExc_ValueError,
                     "claim length out of range: length=%zd expected=0..%zu (max_payload_length) channel=%s stream_id=%d",
                     length, p->max_payload_length, p->channel.c_str(), p->stream_id);
        return nullptr;
    }
    int64_t r = p->xpub != nullptr ? aeron_exclusive_publication_try_claim(p->xpub, static_cast<size_t>(length), &c->claim)
                                   : aeron_publication_try_claim(p->pub, static_cast<size_t>(length), &c->claim);
    if (r > 0) {
        c->active = true;
        Py_INCREF(self);
        c->owner = self;
        p->claims.push_back(args[1]);
    } else if (r == AERON_PUBLICATION_ERROR) {
        PyErr_Format(PublicationError, "try_claim failed: length=%zd channel=%s stream_id=%d error=%s", length,
                     p->channel.c_str(), p->stream_id, aeron_errmsg());
        return nullptr;
    }
    return PyLong_FromLongLong(r);
}

// ---------------------------------------------------------------- Subscription fast calls

// Polls with a Python handler or a FragmentAssembler through
// poll_fn(handler, clientd) -- aeron_subscription_controlled_poll or
// aeron_image_controlled_poll bound to their target and limit.  Returns the
// fragment count, or -1 with a Python error set.
template <class PollFn>
int dispatch_poll(Subscription &s, PyObject *handler, bool controlled, PollFn poll_fn) {
    int n;
    bool failed;
    if (Py_TYPE(handler) == &AssemblerType) {
        auto *a = reinterpret_cast<AssemblerObject *>(handler);
        if (a->polling) {
            PyErr_Format(PyExc_RuntimeError,
                         "a FragmentAssembler used from the handler of a poll through it: channel=%s stream_id=%d fault=user "
                         "(use another FragmentAssembler for the inner poll)",
                         s.channel.c_str(), s.stream_id);
            return -1;
        }
        prune_gone_sessions(*a->reasm, s);
        PollContext ctx{a->handler, &s, &s.header, a->controlled, false, &s.view};
        PollContext *saved = current_assembler_ctx;
        current_assembler_ctx = &ctx;
        a->polling = true;
        n = poll_fn(on_assembler_fragment, a);
        a->polling = false;
        current_assembler_ctx = saved;
        failed = ctx.failed;
    } else {
        PollContext ctx{handler, &s, &s.header, controlled, false, &s.view};
        n = poll_fn(on_fragment, &ctx);
        failed = ctx.failed;
    }
    if (failed) return -1;
    if (n < 0) {
        PyErr_Format(AeronError, "poll failed: channel=%s stream_id=%d error=%s", s.channel.c_str(), s.stream_id,
                     aeron_errmsg());
        return -1;
    }
    return n;
}

// Runs pending image callbacks (cheap check first); false with a Python
// error set if a callback raised.
bool dispatch_pending_image_events(Subscription *s) {
    if (s->events->pending.load(std::memory_order_relaxed) == 0) return true;
    try {
        dispatch_image_events(*s);
    } catch (py::error_already_set &e) {
        e.restore();
        return false;
    }
    return true;
}

void revoke_pulled(Subscription *s);

PyObject *run_poll(Subscription *s, PyObject *handler, int limit, bool controlled, const char *name) {
    PollGuard guard(*s);
    if (!guard.enter(name)) return nullptr;
    revoke_pulled(s);
    if (!dispatch_pending_image_events(s)) return nullptr;
    if (!s->usable()) return PyLong_FromLong(0);  // an image callback closed it
    int n = dispatch_poll(*s, handler, controlled, [&](aeron_controlled_fragment_handler_t fn, void *clientd) {
        return aeron_subscription_controlled_poll(s->sub, fn, clientd, static_cast<size_t>(limit));
    });
    return n < 0 ? nullptr : PyLong_FromLong(n);
}

PyObject *sub_poll_common(PyObject *self, PyObject *const *args, Py_ssize_t nargs, bool controlled,
                          const char *name) {
    if (!arg_count(name, nargs, 2, 2)) return nullptr;
    Subscription *s = checked_subscription(self, name);
    if (s == nullptr) return nullptr;
    if (!s->usable()) return closed_error("subscription", s->channel, s->stream_id, s->client->closed);
    long limit;
    if (!count_arg(args[1], name, "fragment_limit", 1, kMaxFragmentLimit, &limit)) return nullptr;
    return run_poll(s, args[0], static_cast<int>(limit), controlled, name);
}

// poll(handler, fragment_limit) -> fragments read
PyObject *sub_poll(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return sub_poll_common(self, args, nargs, false, "poll");
}

// controlled_poll(handler, fragment_limit) -> fragments read
PyObject *sub_controlled_poll(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return sub_poll_common(self, args, nargs, true, "controlled_poll");
}

// ---- pull-style polling
//
// poll_one() consumes the fragment it returns: the controlled poll's BREAK
// moves the image's subscriber position past it before Python sees the view.
// The log behind that position is no longer ours: for an IPC publication the
// driver's conductor zeroes it (its clean-buffer step runs up to the slowest
// subscriber's position each time it moves the publisher limit), so a view
// over the log could read zeros, or a later message, while the caller still
// holds it.  The fragment is therefore copied, inside the handler and before
// the position moves, into a buffer of the subscription; the view covers the
// copy.  The buffer is rewritten only after revoke_pulled() has released the
// previous view (or pointed the views made from it at a private copy), and
// freed only with the subscription.

struct Pulled {
    Subscription *sub;
    size_t length;
    aeron_header_values_t values;
    int64_t position;
    bool got;
    bool no_memory;  // the copy could not be made: the fragment stays in the log
#ifndef TICKLINE_MEMORYVIEW_STRUCTS
    PyObject *bytes;  // the copy, when views cannot be revoked (see sub_poll_one)
#endif
};

#ifdef TICKLINE_MEMORYVIEW_STRUCTS
// Makes room for length bytes in the subscription's pull buffer; false when
// it cannot grow.  The old buffer is retired, not freed (see Subscription).
bool pull_reserve(Subscription *s, size_t length) {
    if (s->pull_buf != nullptr && length <= s->pull_cap) return true;
    size_t cap = s->pull_cap > 0 ? s->pull_cap : 4096;
    while (cap < length) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    try {
        std::unique_ptr<uint8_t[]> fresh(new uint8_t[cap]);
        if (s->pull_buf != nullptr) s->pull_retired.push_back(std::move(s->pull_buf));
        s->pull_buf = std::move(fresh);
        s->pull_cap = cap;
    } catch (const std::bad_alloc &) {
        return false;
    }
    return true;
}
#endif

// Takes one fragment: copies it while it is still unconsumed, then BREAK
// consumes it and ends the poll.  Any later image of the same poll is left
// alone (ABORT), and so is a fragment that could not be copied.
aeron_controlled_fragment_handler_action_t on_pull(void *clientd, const uint8_t *buffer, size_t length,
                                                   aeron_header_t *header) {
    auto *p = static_cast<Pulled *>(clientd);
    if (p->got || p->no_memory) return AERON_ACTION_ABORT;
#ifdef TICKLINE_MEMORYVIEW_STRUCTS
    if (!pull_reserve(p->sub, length)) {
        p->no_memory = true;
        return AERON_ACTION_ABORT;
    }
    if (length > 0) std::memcpy(p->sub->pull_buf.get(), buffer, length);
#else
    if (length > static_cast<size_t>(PY_SSIZE_T_MAX)) {
        p->no_memory = true;
        return AERON_ACTION_ABORT;
    }
    p->bytes = PyBytes_FromStringAndSize(reinterpret_cast<const char *>(buffer), static_cast<Py_ssize_t>(length));
    if (p->bytes == nullptr) {
        PyErr_Clear();  // reported as MemoryError after the poll
        p->no_memory = true;
        return AERON_ACTION_ABORT;
    }
#endif
    p->length = length;
    aeron_header_values(header, &p->values);  // the header itself lives on poll's stack
    p->position = aeron_header_position(header);
    p->got = true;
    return AERON_ACTION_BREAK;
}

// Revokes the view poll_one() returned last, unless nothing but us holds it.
void revoke_pulled(Subscription *s) {
    if (s->pulled != nullptr) {
        finish_view(&s->view, s->pulled);  // reuses it when unheld, releases it when kept
        s->pulled = nullptr;
    }
}

// poll_one() -> memoryview | None: the next fragment, consumed, as a
// read-only view over a copy of it that the subscription owns.  The view
// stays valid until the next poll_one(), poll(), controlled_poll(),
// poll_image() or drain() on this subscription, or its close (then it, and
// views made from it, are revoked).  Python versions whose memoryviews cannot
// be revoked (no TICKLINE_MEMORYVIEW_STRUCTS) get a view over a bytes copy of
// their own instead, valid for as long as it is held.  The fragment's header
// is in last_header.  Raw fragments: no reassembly.
PyObject *sub_poll_one(PyObject *self, PyObject *const *, Py_ssize_t nargs) {
    if (!arg_count("poll_one", nargs, 0, 0)) return nullptr;
    Subscription *s = checked_subscription(self, "poll_one");
    if (s == nullptr) return nullptr;
    if (!s->usable()) return closed_error("subscription", s->channel, s->stream_id, s->client->closed);
    PollGuard guard(*s);
    if (!guard.enter("poll_one")) return nullptr;
    revoke_pulled(s);  // before the buffer its view covers is rewritten
    if (!dispatch_pending_image_events(s)) return nullptr;
    if (!s->usable()) Py_RETURN_NONE;  // an image callback closed it
    Pulled p{};
    p.sub = s;
    int n = aeron_subscription_controlled_poll(s->sub, on_pull, &p, 1);
#ifndef TICKLINE_MEMORYVIEW_STRUCTS
    PyObject *bytes = p.bytes;  // owned from here
#endif
    if (n < 0 || p.no_memory) {
#ifndef TICKLINE_MEMORYVIEW_STRUCTS
        Py_XDECREF(bytes);
#endif
        if (p.no_memory) {
            PyErr_Format(PyExc_MemoryError,
                         "poll_one could not copy a fragment: channel=%s stream_id=%d fault=ours (the fragment stays unconsumed)",
                         s->channel.c_str(), s->stream_id);
        } else {
            PyErr_Format(AeronError, "poll failed: channel=%s stream_id=%d error=%s", s->channel.c_str(), s->stream_id,
                         aeron_errmsg());
        }
        return nullptr;
    }
    if (!p.got) Py_RETURN_NONE;
    PyObject *hdr = s->header;
    if (hdr == nullptr || Py_REFCNT(hdr) > 1) {
        // A header the caller kept is left as it is; last_header gets a new one.
        Py_XDECREF(hdr);
        hdr = header_new_object();
        if (hdr == nullptr) {
#ifndef TICKLINE_MEMORYVIEW_STRUCTS
            Py_DECREF(bytes);
#endif
            s->header = nullptr;
            return nullptr;
        }
        s->header = hdr;
    }
    auto *h = reinterpret_cast<HeaderObject *>(hdr);
    h->header = nullptr;
    h->frozen = true;
    h->values = p.values;
    h->position = p.position;
#ifdef TICKLINE_MEMORYVIEW_STRUCTS
    PyObject *view = view_for(&s->view, s->pull_buf.get(), p.length);
#else
    PyObject *view = PyMemoryView_FromObject(bytes);  // read-only: bytes is
    Py_DECREF(bytes);                                  // the view's (and its derived views') own
#endif
    if (view == nullptr) return nullptr;
    Py_INCREF(view);
    s->pulled = view;  // our reference, for revoking at the next poll
    return view;
}

PyObject *sub_last_header(PyObject *self, void *) {
    Subscription *s = checked_subscription(self, "last_header");
    if (s == nullptr) return nullptr;
    if (s->header == nullptr) Py_RETURN_NONE;
    Py_INCREF(s->header);
    return s->header;
}

void count_fragment(void *clientd, const uint8_t *, size_t length, aeron_header_t *) {
    *static_cast<uint64_t *>(clientd) += length;
}

// drain(fragment_limit) -> fragments read, without calling Python: consumes
// and discards (benchmarks, skipping a backlog).
PyObject *sub_drain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("drain", nargs, 1, 1)) return nullptr;
    Subscription *s = checked_subscription(self, "drain");
    if (s == nullptr) return nullptr;
    if (!s->usable()) return closed_error("subscription", s->channel, s->stream_id, s->client->closed);
    long limit;
    if (!count_arg(args[0], "drain", "fragment_limit", 1, kMaxFragmentLimit, &limit)) return nullptr;
    PollGuard guard(*s);
    if (!guard.enter("drain")) return nullptr;
    revoke_pulled(s);
    uint64_t bytes = 0;
    int n = aeron_subscription_poll(s->sub, count_fragment, &bytes, static_cast<size_t>(limit));
    if (n < 0) {
        PyErr_Format(AeronError, "poll failed: channel=%s stream_id=%d error=%s", s->channel.c_str(), s->stream_id,
                     aeron_errmsg());
        return nullptr;
    }
    return PyLong_FromLong(n);
}

// ---- receive_into (the native receive path)
//
// receive_into(buffer, spins=1) -> int | None: one whole message copied into
// the caller's writable buffer, its length returned; None when no whole
// message arrived within spins polls.  The polls run here, not in the
// interpreter (one Python call per message, or per spins polls when idle);
// fragmented messages are reassembled by the subscription's Reassembly
// (reassemble above), which keeps partial messages per session between calls.
//
// One message per call: after it is taken every later fragment of the same
// poll is left unconsumed (ABORT), because a subscription's poll goes on to
// its other images after an image's BREAK.  A message longer than the buffer
// is neither copied nor consumed (ABORT; reassemble rolls its last
// fragment back) and MessageTooLong names both lengths, so a caller can
// receive it again into a larger buffer.  The buffer is exported only while
// no Python code runs (after the image callbacks) and released before return.
// The GIL stays held while spinning (releasing it would cost more than a
// poll); signals are checked every kReceiveSignalSpins polls.
constexpr size_t kReceiveFragmentLimit = 256;
constexpr long kReceiveMaxSpins = 1000000000L;
constexpr long kReceiveSignalSpins = 4096;

// A whole message for the caller's buffer.
aeron_controlled_fragment_handler_action_t on_received(ReceiveState *r, const uint8_t *buffer, size_t length,
                                                       aeron_header_t *header) {
    if (length > r->cap) {
        aeron_header_values_t v;
        r->session_id = aeron_header_values(header, &v) == 0 ? v.frame.session_id : 0;
        r->length = length;
        r->too_long = true;
        return AERON_ACTION_ABORT;
    }
    if (length > 0) std::memcpy(r->dst, buffer, length);
    r->length = length;
    r->got = true;
    return AERON_ACTION_BREAK;
}

// Once a message is taken (or refused), nothing more of this poll is
// reassembled, so no later fragment is consumed.
thread_local Subscription *current_receive_sub = nullptr;

aeron_controlled_fragment_handler_action_t on_receive_fragment(void *clientd, const uint8_t *buffer, size_t length,
                                                               aeron_header_t *header) {
    auto *r = static_cast<ReceiveState *>(clientd);
    if (r->got || r->too_long) return AERON_ACTION_ABORT;
    return reassemble(r->reasm, current_receive_sub, buffer, length, header,
                      [r](const uint8_t *b, size_t n, aeron_header_t *h) { return on_received(r, b, n, h); });
}

PyObject *too_long_error(Subscription *s, const ReceiveState &r) {
    PyObject *msg = PyUnicode_FromFormat(
        "message longer than the buffer: length=%zu buffer_length=%zu channel=%s stream_id=%d session_id=%d fault=user "
        "(the message stays unconsumed: receive it into a buffer of at least length bytes)",
        r.length, r.cap, s->channel.c_str(), s->stream_id, r.session_id);
    if (msg == nullptr) return nullptr;
    PyObject *exc = PyObject_CallOneArg(MessageTooLong, msg);
    Py_DECREF(msg);
    if (exc == nullptr) return nullptr;
    PyObject *length = PyLong_FromSize_t(r.length);
    PyObject *cap = PyLong_FromSize_t(r.cap);
    if (length != nullptr && cap != nullptr && PyObject_SetAttrString(exc, "length", length) == 0 &&
        PyObject_SetAttrString(exc, "buffer_length", cap) == 0) {
        PyErr_SetObject(MessageTooLong, exc);
    }
    Py_XDECREF(length);
    Py_XDECREF(cap);
    Py_DECREF(exc);
    return nullptr;
}

PyObject *sub_receive_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("receive_into", nargs, 1, 2)) return nullptr;
    Subscription *s = checked_subscription(self, "receive_into");
    if (s == nullptr) return nullptr;
    if (!s->usable()) return closed_error("subscription", s->channel, s->stream_id, s->client->closed);
    long spins = 1;
    if (nargs == 2 && !count_arg(args[1], "receive_into", "spins", 1, kReceiveMaxSpins, &spins)) return nullptr;
    PollGuard guard(*s);
    if (!guard.enter("receive_into")) return nullptr;
    if (!dispatch_pending_image_events(s)) return nullptr;
    if (!s->usable()) return closed_error("subscription", s->channel, s->stream_id, s->client->closed);
    ReceiveState &r = s->receive;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) return nullptr;  // no Python code runs until released
    r.dst = static_cast<uint8_t *>(view.buf);
    r.cap = static_cast<size_t>(view.len);
    r.length = 0;
    r.got = r.too_long = false;
    int rc = 0;
    Subscription *saved = current_receive_sub;
    current_receive_sub = s;
    for (long i = 0; i < spins; i++) {
        prune_gone_sessions(r.reasm, *s);
        rc = aeron_subscription_controlled_poll(s->sub, on_receive_fragment, &r, kReceiveFragmentLimit);
        if (rc < 0 || r.got || r.too_long) break;
        if (i % kReceiveSignalSpins == kReceiveSignalSpins - 1 && PyErr_CheckSignals() < 0) break;
    }
    current_receive_sub = saved;
    PyBuffer_Release(&view);
    r.dst = nullptr;
    if (PyErr_Occurred()) return nullptr;  // a signal handler raised (KeyboardInterrupt)
    if (rc < 0) {
        PyErr_Format(AeronError, "poll failed: channel=%s stream_id=%d error=%s", s->channel.c_str(), s->stream_id,
                     aeron_errmsg());
        return nullptr;
    }
    if (r.too_long) return too_long_error(s, r);
    if (!r.got) Py_RETURN_NONE;
    return PyLong_FromSize_t(r.length);
}

// offer_retry(buffer, spins=100) -> position (> 0) or a negative status code:
// offer, and retry in C up to spins more times while the outcome is one that
// clears by itself (BACK_PRESSURED, ADMIN_ACTION); NOT_CONNECTED, CLOSED and
// MAX_POSITION_EXCEEDED come back at once.  The GIL stays held.
constexpr long kOfferMaxSpins = 1000000000L;

PyObject *pub_offer_retry(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("offer_retry", nargs, 1, 2)) return nullptr;
    Publication *p = checked_publication(self, "offer_retry");
    if (p == nullptr) return nullptr;
    if (!p->usable()) return closed_error("publication", p->channel, p->stream_id, p->client->closed);
    long spins = 100;
    if (nargs == 2 && !count_arg(args[1], "offer_retry", "spins", 0, kOfferMaxSpins, &spins)) return nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return nullptr;
    const auto *data = static_cast<const uint8_t *>(view.buf);
    const auto len = static_cast<size_t>(view.len);
    int64_t r = do_offer(p, data, len);
    for (long i = 0; i < spins && (r == AERON_PUBLICATION_BACK_PRESSURED || r == AERON_PUBLICATION_ADMIN_ACTION); i++) {
        r = do_offer(p, data, len);
    }
    PyBuffer_Release(&view);
    if (r == AERON_PUBLICATION_ERROR) return offer_error(p, len);
    return PyLong_FromLongLong(r);
}

// turn([driver]) -> work count: one duty cycle of this invoker-mode client's
// conductor, and first of an invoker-mode embedded driver when given, in one
// call (a spin loop that turns both pays one interpreter call, not three).
PyObject *client_turn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!arg_count("turn", nargs, 0, 1)) return nullptr;
    Client *c = checked_client(self, "turn");
    if (c == nullptr) return nullptr;
    if (c->closed || !c->invoker) {
        PyErr_Format(PyExc_RuntimeError, "turn() needs an open invoker-mode client: dir=%s closed=%d invoker=%d",
                     c->dir.c_str(), (int)c->closed, (int)c->invoker);
        return nullptr;
    }
    int work = 0;
    if (nargs == 1) {
        int n = embedded_driver_do_work(args[0]);
        if (n < 0) return nullptr;
        work += n;
    }
    int n = aeron_main_do_work(c->aeron);
    if (n < 0) {
        PyErr_Format(DriverError, "client conductor failed: dir=%s error=%s", c->dir.c_str(), aeron_errmsg());
        return nullptr;
    }
    return PyLong_FromLong(work + n);
}

#define FASTCALL(fn) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fn))

PyMethodDef pub_fast[] = {
    {"offer", FASTCALL(pub_offer), METH_FASTCALL,
     "offer(buffer, offset=0, length=len-offset) -> int\n\n"
     "Copy one message into the log.  Returns the new stream position (> 0) on\n"
     "success, or a negative OfferResult: NOT_CONNECTED, BACK_PRESSURED,\n"
     "ADMIN_ACTION, CLOSED, MAX_POSITION_EXCEEDED.  Raises PublicationError for a\n"
     "terminal failure (message longer than max_message_length) and ClosedError\n"
     "after close().  Messages longer than max_payload_length are fragmented."},
    {"offer_batch", FASTCALL(pub_offer_batch), METH_FASTCALL,
     "offer_batch(messages) -> int\n\n"
     "Offer each message of a sequence in one call; returns how many were\n"
     "accepted (stops at the first refusal, which the caller retries)."},
    {"offer_repeat", FASTCALL(pub_offer_repeat), METH_FASTCALL,
     "offer_repeat(buffer, count) -> int\n\nOffer the same message count times; returns how many were accepted."},
    {"offer_frames", FASTCALL(pub_offer_frames), METH_FASTCALL,
     "offer_frames(buffer, offset, frame_length, count) -> int\n\n"
     "Offer count messages of frame_length bytes lying back to back in buffer from\n"
     "offset, each as its own message, in one call; returns how many were accepted\n"
     "(stops at the first refusal, which the caller retries from that index; a term\n"
     "rotation (ADMIN_ACTION) is retried inside).  Ranges are checked before the first\n"
     "offer (ValueError); PublicationError as offer() for a terminal failure."},
    {"offer_retry", FASTCALL(pub_offer_retry), METH_FASTCALL,
     "offer_retry(buffer, spins=100) -> int\n\n"
     "offer(buffer), retried in C up to spins more times while it is\n"
     "BACK_PRESSURED or ADMIN_ACTION.  Returns the new position (> 0) or the last\n"
     "negative OfferResult (NOT_CONNECTED, CLOSED, MAX_POSITION_EXCEEDED at once).\n"
     "Raises as offer() does.  Holds the GIL while it retries."},
    {"try_claim", FASTCALL(pub_try_claim), METH_FASTCALL,
     "try_claim(length, claim) -> int\n\n"
     "Reserve length bytes in the log and point claim (a BufferClaim) at them for\n"
     "encoding in place; then claim.commit() or claim.abort().  Returns the\n"
     "position (> 0) or a negative OfferResult.  length <= max_payload_length."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef client_fast[] = {
    {"turn", FASTCALL(client_turn), METH_FASTCALL,
     "turn(driver=None) -> int\n\n"
     "One duty cycle of this invoker-mode client's conductor, after one of the\n"
     "invoker-mode EmbeddedDriver when given; returns the total work count."},
    {nullptr, nullptr, 0, nullptr}};

PyMethodDef sub_fast[] = {
    {"poll", FASTCALL(sub_poll), METH_FASTCALL,
     "poll(handler, fragment_limit) -> int\n\n"
     "Deliver up to fragment_limit fragments to handler(buffer, header) and return\n"
     "how many were read.  buffer is a read-only memoryview over the log, valid\n"
     "only during the call (it and the views made from it are released afterwards:\n"
     "copy with bytes(buffer) to keep it).  Pass a FragmentAssembler to receive\n"
     "whole fragmented messages.  close() from the handler takes effect when the\n"
     "poll returns; nothing more is delivered.  Polls of one subscription don't nest.\n"
     "If the handler raises, that fragment counts as consumed and the exception\n"
     "propagates; later fragments stay for the next poll.  Image available and\n"
     "unavailable callbacks run at the start of poll, on the polling thread."},
    {"controlled_poll", FASTCALL(sub_controlled_poll), METH_FASTCALL,
     "controlled_poll(handler, fragment_limit) -> int\n\n"
     "Like poll, but the handler returns a ControlledPollAction (ABORT, BREAK,\n"
     "COMMIT, CONTINUE; None means CONTINUE)."},
    {"poll_one", FASTCALL(sub_poll_one), METH_FASTCALL,
     "poll_one() -> memoryview | None\n\n"
     "Pull style: the next fragment, consumed, or None.  The view is read-only\n"
     "and covers a copy of the fragment that the subscription owns (the log\n"
     "behind the subscriber position is the driver's to clean).  It stays valid\n"
     "until the next poll_one/poll/controlled_poll/poll_image/drain on this\n"
     "subscription or its close (then it and views made from it are released);\n"
     "its header is last_header.  Raw fragments: use poll with a\n"
     "FragmentAssembler for fragmented messages."},
    {"receive_into", FASTCALL(sub_receive_into), METH_FASTCALL,
     "receive_into(buffer, spins=1) -> int | None\n\n"
     "Poll in C, up to spins times, until one whole message has arrived; copy it\n"
     "into buffer (any writable contiguous buffer: bytearray, memoryview, numpy)\n"
     "and return its length.  None when no whole message arrived.  Fragmented\n"
     "messages are reassembled (per session).  Exactly one message is consumed per\n"
     "call.  A message longer than buffer raises MessageTooLong (length,\n"
     "buffer_length) and stays unconsumed.  Holds the GIL while it spins (signals\n"
     "are checked); image callbacks run first, on this thread."},
    {"drain", FASTCALL(sub_drain), METH_FASTCALL,
     "drain(fragment_limit) -> int\n\nConsume and discard up to fragment_limit fragments without calling Python."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef sub_last_header_def = {"last_header", sub_last_header, nullptr,
                                    "Header of the fragment poll_one() returned last (None before any).", nullptr};

void add_fast_methods(py::handle cls, PyMethodDef *defs) {
    auto *type = reinterpret_cast<PyTypeObject *>(cls.ptr());
    for (PyMethodDef *d = defs; d->ml_name != nullptr; d++) {
        PyObject *descr = PyDescr_NewMethod(type, d);
        if (descr == nullptr || PyObject_SetAttrString(cls.ptr(), d->ml_name, descr) < 0) {
            Py_XDECREF(descr);
            throw py::error_already_set();
        }
        Py_DECREF(descr);
    }
}

void ready_type(py::module_ &m, PyTypeObject *type, const char *name) {
    if (PyType_Ready(type) < 0) throw py::error_already_set();
    Py_INCREF(type);
    m.add_object(name, py::handle(reinterpret_cast<PyObject *>(type)));
}

}  // namespace

int poll_image(Subscription &s, int32_t session_id, PyObject *handler, int fragment_limit, bool controlled) {
    PollGuard guard(s);
    if (!guard.enter("poll_image")) return -1;
    revoke_pulled(&s);
    if (s.events->pending.load() > 0) {
        try {
            dispatch_image_events(s);
        } catch (py::error_already_set &e) {
            e.restore();
            return -1;
        }
    }
    if (!s.usable()) return 0;  // an image callback closed it
    aeron_image_t *image = aeron_subscription_image_by_session_id(s.sub, session_id);
    if (image == nullptr) return -2;
    // A FragmentAssembler keeps partial messages per session id (and
    // subscription), so the same one serves per-image polls too.
    int n = dispatch_poll(s, handler, controlled, [&](aeron_controlled_fragment_handler_t fn, void *clientd) {
        return aeron_image_controlled_poll(image, fn, clientd, static_cast<size_t>(fragment_limit));
    });
    aeron_subscription_image_release(s.sub, image);
    return n;
}

void init_fastpath(py::module_ &m, py::class_<Client, std::shared_ptr<Client>> &client_cls,
                   py::class_<Publication, std::shared_ptr<Publication>> &pub_cls,
                   py::class_<Subscription, std::shared_ptr<Subscription>> &sub_cls) {
    release_str = PyUnicode_InternFromString("release");
    get_referrers = py::object(py::module_::import("gc").attr("get_referrers")).release().ptr();

    HeaderType.tp_name = "tickline._aeron.Header";
    HeaderType.tp_basicsize = sizeof(HeaderObject);
    HeaderType.tp_flags = Py_TPFLAGS_DEFAULT;
    HeaderType.tp_doc = "The frame header of a fragment: valid during the handler call; a copy if kept.";
    HeaderType.tp_getset = header_getset;
    HeaderType.tp_repr = header_repr;
    HeaderType.tp_dealloc = [](PyObject *self) { PyObject_Free(self); };
    ready_type(m, &HeaderType, "Header");

    ClaimType.tp_name = "tickline._aeron.BufferClaim";
    ClaimType.tp_basicsize = sizeof(ClaimObject);
    ClaimType.tp_flags = Py_TPFLAGS_DEFAULT;
    ClaimType.tp_doc =
        "BufferClaim(): reusable target of Publication.try_claim.\n\n"
        "While active it is a writable buffer over the claimed payload (use it with\n"
        "struct.pack_into, memoryview, or an SBE encoder); commit() publishes it,\n"
        "abort() gives it up.  As a context manager it commits on success and aborts\n"
        "on an exception.  A claim dropped while active is aborted.";
    ClaimType.tp_new = claim_new;
    ClaimType.tp_dealloc = claim_dealloc;
    ClaimType.tp_as_buffer = &claim_as_buffer;
    ClaimType.tp_as_sequence = &claim_as_sequence;
    ClaimType.tp_methods = claim_methods;
    ClaimType.tp_getset = claim_getset;
    ready_type(m, &ClaimType, "BufferClaim");

    AssemblerType.tp_name = "tickline._aeron.FragmentAssembler";
    AssemblerType.tp_basicsize = sizeof(AssemblerObject);
    AssemblerType.tp_flags = Py_TPFLAGS_DEFAULT;
    AssemblerType.tp_doc =
        "FragmentAssembler(handler, controlled=False): pass to poll() instead of a\n"
        "handler to receive whole messages that the publication fragmented.  With\n"
        "controlled=True use it with controlled_poll and return actions.";
    AssemblerType.tp_new = assembler_new;
    AssemblerType.tp_dealloc = assembler_dealloc;
    AssemblerType.tp_getset = assembler_getset;
    ready_type(m, &AssemblerType, "FragmentAssembler");

    sub_cls.attr("last_header") = py::reinterpret_steal<py::object>(
        PyDescr_NewGetSet(reinterpret_cast<PyTypeObject *>(sub_cls.ptr()), &sub_last_header_def));
    add_fast_methods(client_cls, client_fast);
    add_fast_methods(pub_cls, pub_fast);
    add_fast_methods(sub_cls, sub_fast);
    sub_cls.def_property_readonly(
        "reassembly",
        [](Subscription &s) { return py::reinterpret_steal<py::object>(reassembly_stats(s.receive.reasm)); },
        "receive_into's reassembly: {'bytes': buffer bytes held for partial messages (and the one spare), "
        "'sessions': sessions with a message in progress, 'dropped': partial messages discarded (image gone, "
        "too long, broken sequence)}.");
}

}  // namespace tickline
