// Shared declarations of tickline._aeron: the Aeron C client and C media
// driver wrapped for Python.
//
// Threading: every object here is used from Python threads holding the GIL.
// Aeron's client conductor may run on its own C thread; the only code that
// runs there is on_error / on_available_image / on_unavailable_image below,
// which never touch Python: they queue records under a mutex and the records
// are handed to Python on the polling thread.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "aeronc.h"
}

namespace py = pybind11;

namespace tickline {

// Exception types, created at module init.
extern PyObject *AeronError;         // base of all errors below
extern PyObject *DriverError;        // no driver / driver died / driver timed out
extern PyObject *RegistrationError;  // the driver refused a resource (bad channel, ...)
extern PyObject *ClosedError;        // a resource used after close
extern PyObject *PublicationError;   // offer/try_claim failed for a terminal reason
extern PyObject *MessageTooLong;     // receive_into: a message longer than the caller's buffer

[[noreturn]] void raise(PyObject *type, const std::string &message);
std::string aeron_error_text();

struct ErrorRecord {
    int code;
    std::string message;
};

struct ImageEvent {
    bool available;
    int32_t session_id;
    int64_t correlation_id;
    int64_t join_position;
    std::string source_identity;
};

// Image events for one subscription.  Owned by the client (not the
// subscription) because the conductor may deliver an unavailable-image event
// while a subscription is closing; it is freed only after aeron_close.
struct ImageEvents {
    std::mutex mu;
    std::vector<ImageEvent> queue;
    std::atomic<int> pending{0};
    // Images gone unavailable so far (bumped by the conductor after it removed
    // the image from the subscription): reassemblers prune on a change.
    std::atomic<uint64_t> unavailable{0};
};

struct Subscription;
struct Publication;

struct Client : std::enable_shared_from_this<Client> {
    aeron_context_t *context = nullptr;
    aeron_t *aeron = nullptr;
    bool invoker = false;
    bool closed = false;
    std::string dir;
    std::mutex errors_mu;
    std::vector<ErrorRecord> errors;
    std::atomic<bool> driver_lost{false};
    std::vector<std::unique_ptr<ImageEvents>> image_events;
    // Invoker mode: called beside aeron_main_do_work while a blocking call
    // waits, so an invoker-mode driver on the same thread keeps turning.
    py::object wait_hook;
    // Polls of this client's subscriptions now on the stack.  close() from a
    // fragment handler or image callback marks the client closed at once and
    // leaves aeron_close (which unmaps the logs being read) to the end of the
    // outermost poll.
    int polling = 0;
    // Open subscriptions, whose views close() revokes before unmapping.
    std::vector<Subscription *> subscriptions;
    // Open publications, whose active claims close() revokes.
    std::vector<Publication *> publications;

    ~Client();
    void close();
    void release();  // the real close: aeron_close; never while polling > 0
    void check_open(const char *what) const;
};

struct Publication {
    std::shared_ptr<Client> client;
    aeron_publication_t *pub = nullptr;
    aeron_exclusive_publication_t *xpub = nullptr;
    bool closed = false;
    std::string channel;
    int32_t stream_id = 0;
    int32_t session_id = 0;
    int64_t registration_id = 0;
    size_t max_message_length = 0;
    size_t max_payload_length = 0;
    size_t term_buffer_length = 0;
    std::vector<PyObject *> claims;  // active BufferClaims over its log (each holds a reference to us)

    bool usable() const { return !closed && !client->closed; }
    void check_open() const;
    void close();
    ~Publication();
};

// Partial messages of a reassembler (fastpath.cpp: the FragmentAssembler and
// Subscription.receive_into), keyed by session id and the subscription they
// came from.  Memory stays bounded when peers come and go: a session holds a
// buffer only while one of its messages is in progress (at most the stream's
// max message length, min(16 MiB, term length / 8)); a completed message's
// buffer is kept as the one spare only up to kSpareMax, else freed; a partial
// message whose image went away (the subscription's unavailable-image count
// moved and the session has no image) is discarded and counted in dropped.
struct Reassembly {
    static constexpr size_t kSpareMax = 1 << 20;
    struct Partial {
        int32_t session_id = 0;
        const void *owner = nullptr;  // the Subscription the fragments came from
        std::unique_ptr<uint8_t[]> buf;
        size_t cap = 0;
        size_t len = 0;
        uint8_t first_frame[32] = {};  // the BEGIN fragment's data header (the whole message's header is made from it)
    };
    std::vector<Partial> partials;  // one per session with a message in progress
    std::unique_ptr<uint8_t[]> spare;
    size_t spare_cap = 0;
    uint64_t dropped = 0;  // partial messages discarded (image gone, too long, broken sequence)
    const void *seen_owner = nullptr;
    uint64_t seen_unavailable = 0;

    size_t bytes() const {
        size_t n = spare_cap;
        for (const auto &p : partials) n += p.cap;
        return n;
    }
};

// State of Subscription.receive_into (fastpath.cpp): the reassembler (it
// keeps partial messages per session between calls) and the caller's buffer
// for the duration of one call.
struct ReceiveState {
    Reassembly reasm;
    uint8_t *dst = nullptr;  // the caller's buffer, exported for one call only
    size_t cap = 0;
    size_t length = 0;       // of the message taken, or refused as too long
    int32_t session_id = 0;  // of the message refused as too long
    bool got = false;
    bool too_long = false;
};

struct Subscription {
    std::shared_ptr<Client> client;
    aeron_subscription_t *sub = nullptr;
    ImageEvents *events = nullptr;
    bool closed = false;
    std::string channel;
    int32_t stream_id = 0;
    int64_t registration_id = 0;
    py::object on_available;
    py::object on_unavailable;
    PyObject *header = nullptr;  // a reusable Header, owned
    PyObject *view = nullptr;    // a reusable memoryview, owned (see fastpath.cpp)
    PyObject *pulled = nullptr;  // the view poll_one() last returned, owned, revoked at the next poll
    // poll_one() copies each fragment here and its view covers the copy (the
    // log behind the subscriber position is the driver's to clean, see
    // fastpath.cpp).  Outgrown buffers are kept until the subscription is
    // destroyed: an export of an old view (numpy) may still point into one.
    std::unique_ptr<uint8_t[]> pull_buf;
    size_t pull_cap = 0;
    std::vector<std::unique_ptr<uint8_t[]>> pull_retired;
    int polling = 0;             // polls of this subscription on the stack (0 or 1: polls don't nest)
    bool close_pending = false;  // close() was called during a poll: release() at its end
    ReceiveState receive;

    bool usable() const { return !closed && !client->closed; }
    void check_open() const;
    void close();
    void release();       // the real close: revoke views, aeron_subscription_close
    void revoke_views();  // revoke the view poll_one() returned (before the log is unmapped)
    ~Subscription();
};

// Marks a poll of s on the stack (refusing a nested poll of the same
// subscription) and, at the end of the outermost one, carries out a close()
// that a handler or callback asked for.
class PollGuard {
  public:
    explicit PollGuard(Subscription &s) : s_(s) {}
    // False with a Python error set when s is already being polled.
    bool enter(const char *fn);
    ~PollGuard();

  private:
    Subscription &s_;
    bool entered_ = false;
};

// The C++ object behind a pybind11 instance of T, or nullptr with TypeError
// set: when self is not a T, or was made with __new__ and never constructed
// (its holder is empty), or is a subclass mixing bindings whose T part was
// never constructed.  Every raw entry point goes through here before it
// touches the object.
template <class T>
T *checked_self(PyObject *self, const char *what, const char *fn) {
    static const py::detail::type_info *tinfo = py::detail::get_type_info(typeid(T));
    if (tinfo == nullptr || !PyObject_TypeCheck(self, tinfo->type)) {
        PyErr_Format(PyExc_TypeError, "%s() expected type %s: got=%s", fn, what, Py_TYPE(self)->tp_name);
        return nullptr;
    }
    auto *inst = reinterpret_cast<py::detail::instance *>(self);
    py::detail::value_and_holder vh = inst->get_value_and_holder(tinfo, false);
    if (!vh || !vh.holder_constructed() || vh.value_ptr() == nullptr) {
        PyErr_Format(PyExc_TypeError,
                     "%s() on a %s that was never constructed: type=%s fault=user (make it with its factory, not __new__)",
                     fn, what, Py_TYPE(self)->tp_name);
        return nullptr;
    }
    return vh.value_ptr<T>();
}

// Refuses Python-side construction of a class whose objects only factories
// make (module.cpp): cls.__new__(cls) would leave the C++ object unconstructed.
void refuse_direct_construction(py::handle cls);

// Fast paths (fastpath.cpp).
void init_fastpath(py::module_ &m, py::class_<Client, std::shared_ptr<Client>> &client_cls,
                   py::class_<Publication, std::shared_ptr<Publication>> &pub_cls,
                   py::class_<Subscription, std::shared_ptr<Subscription>> &sub_cls);
void dispatch_image_events(Subscription &s);
// Revokes a fragment view handed out earlier (fastpath.cpp): released when
// possible, and views derived from it are pointed at a private copy.
void revoke_view(PyObject *view);
// Ends the active claims of p (before its log goes): memoryviews of them see zeros.
void revoke_claims(Publication &p);
int poll_image(Subscription &s, int32_t session_id, PyObject *handler, int fragment_limit, bool controlled);

// Embedded driver and CnC reading (driver.cpp).
void init_driver(py::module_ &m);
// One duty cycle of an invoker-mode EmbeddedDriver object; -1 with a Python
// error set if it is not one, or closed, or not in invoker mode.
int embedded_driver_do_work(PyObject *driver);

// Benchmark loops (bench.cpp).
void init_bench(py::module_ &m);
// Adds each function of a {nullptr}-terminated table (raw METH_FASTCALL functions, cheaper to call
// than pybind11's dispatch) to ``m``; the table must live as long as the process.
void add_functions(py::module_ &m, PyMethodDef *methods);
void init_fixcodec(py::module_ &m);  // fixcodec.cpp: FIX tag=value fast paths
void init_fixbridge(py::module_ &m);  // fixbridge.cpp: FIX <-> order message fast paths
void init_fixstore(py::module_ &m);   // fixstore.cpp: the FileStore's record append
void init_syncer(py::module_ &m);     // syncer.cpp: fsync on a native thread (the cluster log)
void init_hmac(py::module_ &m);       // hmac.cpp: HMAC-SHA256 of the cluster's consensus messages
void init_archive(py::module_ &m);    // archive.cpp: the archive's recorder, replayer and frame scanner
void init_mdencode(py::module_ &m);   // mdencode.cpp: market-data TopOfBook batches encoded natively
void init_batch(py::module_ &m);      // batch.cpp: the frame scanner of tickline.codecs.batch
void init_counter(py::module_ &m);    // counter.cpp: counters a component owns (Aeron.add_counter)

}  // namespace tickline
