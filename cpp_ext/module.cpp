// tickline._aeron: module definition, the client, publications and
// subscriptions (the non-hot parts; hot paths are in fastpath.cpp).
#include "tickline_aeron.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace tickline {

PyObject *AeronError = nullptr;
PyObject *DriverError = nullptr;
PyObject *RegistrationError = nullptr;
PyObject *ClosedError = nullptr;
PyObject *PublicationError = nullptr;
PyObject *MessageTooLong = nullptr;

void raise(PyObject *type, const std::string &message) {
    PyErr_SetString(type, message.c_str());
    throw py::error_already_set();
}

std::string aeron_error_text() {
    const char *m = aeron_errmsg();
    std::string s = m != nullptr ? m : "";
    // Aeron's messages carry a stack of "[file:line]" frames on new lines;
    // keep them but on one line so the key=value message stays greppable.
    for (auto &c : s) {
        if (c == '\n') c = ' ';
    }
    return s;
}

// ---------------------------------------------------------------- Client

namespace {

void on_client_error(void *clientd, int errcode, const char *message) {
    // Runs on the conductor thread (or the invoker's): no Python here.
    auto *c = static_cast<Client *>(clientd);
    std::lock_guard<std::mutex> lock(c->errors_mu);
    if (errcode == AERON_CLIENT_ERROR_DRIVER_TIMEOUT || errcode == AERON_CLIENT_ERROR_CLIENT_TIMEOUT) {
        c->driver_lost.store(true);
    }
    if (c->errors.size() < 1000) {
        c->errors.push_back({errcode, message != nullptr ? message : ""});
    }
}

void queue_image_event(void *clientd, aeron_image_t *image, bool available) {
    // Runs on the conductor thread: copy what Python will want, queue it.
    auto *ev = static_cast<ImageEvents *>(clientd);
    aeron_image_constants_t k;
    if (aeron_image_constants(image, &k) < 0) return;
    ImageEvent e{available, k.session_id, k.correlation_id, k.join_position,
                 k.source_identity != nullptr ? k.source_identity : ""};
    std::lock_guard<std::mutex> lock(ev->mu);
    ev->queue.push_back(std::move(e));
    ev->pending.store(static_cast<int>(ev->queue.size()), std::memory_order_release);
}

void on_available_image(void *clientd, aeron_subscription_t *, aeron_image_t *image) {
    queue_image_event(clientd, image, true);
}

void on_unavailable_image(void *clientd, aeron_subscription_t *, aeron_image_t *image) {
    queue_image_event(clientd, image, false);
    static_cast<ImageEvents *>(clientd)->unavailable.fetch_add(1, std::memory_order_release);
}

// Waits for an asynchronous request to the driver: poll_once() returns 1 when
// done, 0 while pending, -1 on error.  The client conductor itself answers
// every request (the driver's reply or its own timeout), so the loop ends; it
// releases the GIL while the conductor thread works, and in invoker mode it
// drives the conductor itself.
template <class PollOnce>
void wait_for_driver(Client &c, PollOnce poll_once, const std::string &what, const std::string &where) {
    int spins = 0;
    for (;;) {
        int rc = poll_once();
        if (rc > 0) return;
        if (rc == 0 && (c.driver_lost.load() || aeron_is_closed(c.aeron))) {
            raise(DriverError, what + " abandoned: media driver lost: " + where + " dir=" + c.dir);
        }
        if (rc < 0) {
            std::string err = aeron_error_text();
            PyObject *type = c.driver_lost.load() ? DriverError : RegistrationError;
            raise(type, what + " failed: " + where + " dir=" + c.dir + " error=" + err);
        }
        if (c.invoker) {
            aeron_main_do_work(c.aeron);
            if (!c.wait_hook.is_none()) c.wait_hook();
        } else {
            py::gil_scoped_release nogil;
            std::this_thread::sleep_for(std::chrono::microseconds(spins < 100 ? 10 : 1000));
        }
        if (++spins % 64 == 0 && PyErr_CheckSignals() < 0) throw py::error_already_set();
    }
}

template <class Out, class Async, class PollFn>
Out *await_registration(Client &c, Async *async, PollFn poll, const char *what, const std::string &channel,
                        int32_t stream_id) {
    Out *out = nullptr;
    wait_for_driver(c, [&] { return poll(&out, async); }, std::string(what) + " registration",
                    "channel=" + channel + " stream_id=" + std::to_string(stream_id));
    return out;
}

// Adds or removes a destination of a manual multi-destination-cast
// publication, or of a multi-destination subscription.
template <class Start, class PollFn>
void change_destination(Client &c, Start start, PollFn poll, const std::string &what, const std::string &uri) {
    c.check_open(what.c_str());
    aeron_async_destination_t *async = nullptr;
    if (start(&async) < 0) raise(RegistrationError, what + " failed: destination=" + uri + " error=" + aeron_error_text());
    wait_for_driver(c, [&] { return poll(async); }, what, "destination=" + uri);
}

}  // namespace

void Client::check_open(const char *what) const {
    if (closed) raise(ClosedError, std::string("client is closed: operation=") + what + " dir=" + dir);
    if (driver_lost.load() || aeron_is_closed(aeron)) {
        raise(DriverError, std::string("media driver lost: the client timed out waiting for it: operation=") + what +
                               " dir=" + dir);
    }
}

void Client::close() {
    if (closed) return;
    closed = true;  // from here every use raises ClosedError
    if (polling > 0) return;  // a handler or callback asked: the poll's PollGuard releases at its end
    release();
}

void Client::release() {
    // Views handed out over the logs, and claims, go before the logs are unmapped.
    std::vector<Subscription *> subs = subscriptions;
    for (Subscription *s : subs) s->revoke_views();
    std::vector<Publication *> pubs = publications;
    for (Publication *p : pubs) revoke_claims(*p);
    if (aeron != nullptr || context != nullptr) {
        py::gil_scoped_release nogil;  // joins the conductor thread
        if (aeron != nullptr) aeron_close(aeron);
        if (context != nullptr) aeron_context_close(context);
    }
    aeron = nullptr;
    context = nullptr;
    image_events.clear();
}

Client::~Client() {
    closed = true;
    if (aeron != nullptr) aeron_close(aeron);
    if (context != nullptr) aeron_context_close(context);
}

std::shared_ptr<Client> make_client(const std::string &dir, int64_t driver_timeout_ms, bool invoker, bool pre_touch,
                                    const std::string &client_name, int64_t resource_linger_ns, py::object wait_hook) {
    auto c = std::make_shared<Client>();
    c->invoker = invoker;
    c->wait_hook = std::move(wait_hook);
    if (aeron_context_init(&c->context) < 0) raise(AeronError, "client context init failed: error=" + aeron_error_text());
    if (!dir.empty()) aeron_context_set_dir(c->context, dir.c_str());
    c->dir = aeron_context_get_dir(c->context);
    if (driver_timeout_ms > 0) aeron_context_set_driver_timeout_ms(c->context, static_cast<uint64_t>(driver_timeout_ms));
    aeron_context_set_use_conductor_agent_invoker(c->context, invoker);
    aeron_context_set_pre_touch_mapped_memory(c->context, pre_touch);
    if (!client_name.empty()) aeron_context_set_client_name(c->context, client_name.c_str());
    if (resource_linger_ns >= 0) aeron_context_set_resource_linger_duration_ns(c->context, static_cast<uint64_t>(resource_linger_ns));
    aeron_context_set_error_handler(c->context, on_client_error, c.get());
    int rc;
    {
        py::gil_scoped_release nogil;  // waits up to driver_timeout_ms for the driver's CnC file
        rc = aeron_init(&c->aeron, c->context);
    }
    if (rc < 0) {
        std::string err = aeron_error_text();
        uint64_t timeout = aeron_context_get_driver_timeout_ms(c->context);
        aeron_context_close(c->context);
        c->context = nullptr;
        c->aeron = nullptr;
        c->closed = true;
        raise(DriverError, "no media driver answered: dir=" + c->dir + " timeout_ms=" + std::to_string(timeout) +
                               " error=" + err);
    }
    if (aeron_start(c->aeron) < 0) {
        std::string err = aeron_error_text();
        c->close();
        raise(DriverError, "client start failed: dir=" + c->dir + " error=" + err);
    }
    return c;
}

// ---------------------------------------------------------------- Publication

void Publication::check_open() const {
    if (client->closed) raise(ClosedError, "publication is closed: channel=" + channel + " stream_id=" + std::to_string(stream_id) + " reason=client closed");
    if (closed) raise(ClosedError, "publication is closed: channel=" + channel + " stream_id=" + std::to_string(stream_id) + " reason=closed by user");
}

void Publication::close() {
    if (closed) return;
    revoke_claims(*this);
    closed = true;
    if (client->closed) return;  // aeron_close freed it, or will at the end of a poll
    if (xpub != nullptr) aeron_exclusive_publication_close(xpub, nullptr, nullptr);
    if (pub != nullptr) aeron_publication_close(pub, nullptr, nullptr);
}

Publication::~Publication() {
    if (!closed && !client->closed) {
        if (xpub != nullptr) aeron_exclusive_publication_close(xpub, nullptr, nullptr);
        if (pub != nullptr) aeron_publication_close(pub, nullptr, nullptr);
    }
    auto &pubs = client->publications;
    pubs.erase(std::remove(pubs.begin(), pubs.end(), this), pubs.end());
}

std::shared_ptr<Publication> add_publication(std::shared_ptr<Client> c, const std::string &channel, int32_t stream_id,
                                             bool exclusive) {
    c->check_open("add_publication");
    auto p = std::make_shared<Publication>();
    p->client = c;
    aeron_publication_constants_t k;
    if (exclusive) {
        aeron_async_add_exclusive_publication_t *async = nullptr;
        if (aeron_async_add_exclusive_publication(&async, c->aeron, channel.c_str(), stream_id) < 0) {
            raise(RegistrationError, "exclusive publication registration failed: channel=" + channel + " stream_id=" +
                                         std::to_string(stream_id) + " error=" + aeron_error_text());
        }
        p->xpub = await_registration<aeron_exclusive_publication_t>(*c, async, aeron_async_add_exclusive_publication_poll,
                                                                    "exclusive publication", channel, stream_id);
        aeron_exclusive_publication_constants(p->xpub, &k);
    } else {
        aeron_async_add_publication_t *async = nullptr;
        if (aeron_async_add_publication(&async, c->aeron, channel.c_str(), stream_id) < 0) {
            raise(RegistrationError, "publication registration failed: channel=" + channel + " stream_id=" +
                                         std::to_string(stream_id) + " error=" + aeron_error_text());
        }
        p->pub = await_registration<aeron_publication_t>(*c, async, aeron_async_add_publication_poll, "publication",
                                                         channel, stream_id);
        aeron_publication_constants(p->pub, &k);
    }
    p->channel = k.channel != nullptr ? k.channel : channel;
    p->stream_id = k.stream_id;
    p->session_id = k.session_id;
    p->registration_id = k.registration_id;
    p->max_message_length = k.max_message_length;
    p->max_payload_length = k.max_payload_length;
    p->term_buffer_length = k.term_buffer_length;
    c->publications.push_back(p.get());
    return p;
}

// ---------------------------------------------------------------- Subscription

void Subscription::check_open() const {
    if (client->closed) raise(ClosedError, "subscription is closed: channel=" + channel + " stream_id=" + std::to_string(stream_id) + " reason=client closed");
    if (closed) raise(ClosedError, "subscription is closed: channel=" + channel + " stream_id=" + std::to_string(stream_id) + " reason=closed by user");
}

void Subscription::close() {
    if (closed) return;
    closed = true;  // from here every use raises ClosedError, and a poll under way delivers no more
    if (polling > 0) {
        close_pending = true;  // a handler or callback asked: the poll's PollGuard releases at its end
        return;
    }
    release();
}

void Subscription::revoke_views() {
    if (pulled != nullptr) {
        PyObject *v = pulled;
        pulled = nullptr;
        revoke_view(v);  // takes our reference
    }
}

void Subscription::release() {
    close_pending = false;
    revoke_views();
    // When the client is closed (or closing), aeron_close frees the subscription.
    if (!client->closed && client->aeron != nullptr && sub != nullptr) aeron_subscription_close(sub, nullptr, nullptr);
    sub = nullptr;
    Py_CLEAR(header);
    Py_CLEAR(view);
    auto &subs = client->subscriptions;
    subs.erase(std::remove(subs.begin(), subs.end(), this), subs.end());
}

Subscription::~Subscription() {
    if (!closed) closed = true;
    if (client) release();
}

bool PollGuard::enter(const char *fn) {
    if (s_.polling > 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s() called from a handler or callback of a poll of the same subscription: channel=%s stream_id=%d fault=user "
                     "(polls of one subscription don't nest)",
                     fn, s_.channel.c_str(), s_.stream_id);
        return false;
    }
    s_.polling++;
    s_.client->polling++;
    entered_ = true;
    return true;
}

PollGuard::~PollGuard() {
    if (!entered_) return;
    s_.polling--;
    Client &c = *s_.client;
    c.polling--;
    if (s_.polling == 0 && s_.close_pending) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);  // a handler's exception may be on its way out
        s_.release();
        PyErr_Restore(et, ev, tb);
    }
    if (c.polling == 0 && c.closed && (c.aeron != nullptr || c.context != nullptr)) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        c.release();
        PyErr_Restore(et, ev, tb);
    }
}

struct ImageInfo {
    int32_t session_id;
    int64_t correlation_id;
    int64_t join_position;
    std::string source_identity;
};

void dispatch_image_events(Subscription &s) {
    std::vector<ImageEvent> events;
    {
        std::lock_guard<std::mutex> lock(s.events->mu);
        events.swap(s.events->queue);
        s.events->pending.store(0, std::memory_order_relaxed);
    }
    for (auto &e : events) {
        py::object &cb = e.available ? s.on_available : s.on_unavailable;
        if (cb.is_none()) continue;
        cb(ImageInfo{e.session_id, e.correlation_id, e.join_position, e.source_identity});
    }
}

std::shared_ptr<Subscription> add_subscription(std::shared_ptr<Client> c, const std::string &channel, int32_t stream_id,
                                               py::object on_available, py::object on_unavailable) {
    c->check_open("add_subscription");
    auto s = std::make_shared<Subscription>();
    s->client = c;
    s->channel = channel;
    s->stream_id = stream_id;
    s->on_available = std::move(on_available);
    s->on_unavailable = std::move(on_unavailable);
    c->image_events.push_back(std::make_unique<ImageEvents>());
    s->events = c->image_events.back().get();
    aeron_async_add_subscription_t *async = nullptr;
    if (aeron_async_add_subscription(&async, c->aeron, channel.c_str(), stream_id, on_available_image, s->events,
                                     on_unavailable_image, s->events) < 0) {
        raise(RegistrationError, "subscription registration failed: channel=" + channel + " stream_id=" +
                                     std::to_string(stream_id) + " error=" + aeron_error_text());
    }
    s->sub = await_registration<aeron_subscription_t>(*c, async, aeron_async_add_subscription_poll, "subscription",
                                                      channel, stream_id);
    c->subscriptions.push_back(s.get());
    aeron_subscription_constants_t k;
    aeron_subscription_constants(s->sub, &k);
    s->registration_id = k.registration_id;
    return s;
}

struct ImageStatus {
    int32_t session_id;
    int64_t correlation_id;
    int64_t join_position;
    int64_t position;
    bool is_end_of_stream;
    bool is_closed;
    std::string source_identity;
};

ImageStatus image_status(aeron_image_t *image) {
    aeron_image_constants_t k;
    aeron_image_constants(image, &k);
    return ImageStatus{k.session_id, k.correlation_id, k.join_position, aeron_image_position(image),
                       aeron_image_is_end_of_stream(image), aeron_image_is_closed(image),
                       k.source_identity != nullptr ? k.source_identity : ""};
}

namespace {

PyObject *refusal(PyObject *type) {
    const char *name = PyType_Check(type) ? reinterpret_cast<PyTypeObject *>(type)->tp_name : "?";
    PyErr_Format(PyExc_TypeError,
                 "%s objects are made only by their factories (tickline.transport.Aeron, Aeron.add_publication, "
                 "Aeron.add_subscription, MediaDriver), never by __new__: type=%s fault=user",
                 name, name);
    return nullptr;
}

PyObject *refuse_new(PyTypeObject *type, PyObject *, PyObject *) { return refusal(reinterpret_cast<PyObject *>(type)); }

PyObject *refuse_dunder_new(PyObject *, PyObject *args, PyObject *) {
    return refusal(PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None);
}

PyMethodDef refuse_new_def = {"__new__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(refuse_dunder_new)),
                              METH_VARARGS | METH_KEYWORDS, "Refused: objects of this type come from their factories."};

}  // namespace

void refuse_direct_construction(py::handle cls) {
    // pybind11 makes the instances it returns with tp_alloc, not tp_new, so
    // only Python-side construction (which would leave the C++ object
    // unconstructed) is refused: tp_new for calls and for the safety check of
    // a base's __new__ (pybind11_object.__new__(cls) is refused because cls's
    // tp_new differs), and __new__ in the class dict for cls.__new__(cls).
    // Subclasses inherit both.
    auto *type = reinterpret_cast<PyTypeObject *>(cls.ptr());
    PyObject *fn = PyCFunction_New(&refuse_new_def, nullptr);
    PyObject *sm = fn != nullptr ? PyStaticMethod_New(fn) : nullptr;
    Py_XDECREF(fn);
    if (sm == nullptr || PyDict_SetItemString(type->tp_dict, "__new__", sm) < 0) {
        Py_XDECREF(sm);
        throw py::error_already_set();
    }
    Py_DECREF(sm);
    type->tp_new = refuse_new;
    PyType_Modified(type);
}

void add_functions(py::module_ &m, PyMethodDef *methods) {
    for (PyMethodDef *d = methods; d->ml_name != nullptr; ++d) {
        PyObject *f = PyCFunction_NewEx(d, nullptr, m.attr("__name__").ptr());
        if (f == nullptr) throw py::error_already_set();
        m.add_object(d->ml_name, py::reinterpret_steal<py::object>(f));  // the module takes its own reference
    }
}

}  // namespace tickline

using namespace tickline;

static PyObject *new_exception(py::module_ &m, const char *name, PyObject *base, const char *doc) {
    std::string full = std::string("tickline._aeron.") + name;
    PyObject *e = PyErr_NewExceptionWithDoc(full.c_str(), doc, base, nullptr);
    if (e == nullptr) throw py::error_already_set();
    m.add_object(name, py::handle(e));
    return e;
}

PYBIND11_MODULE(_aeron, m) {
    m.doc() = "Aeron's C client and C media driver for Python (see tickline.transport for the API).";

    AeronError = new_exception(m, "AeronError", PyExc_Exception, "Base class of Aeron errors.");
    PyObject *bases = PyTuple_Pack(2, AeronError, PyExc_TimeoutError);
    DriverError = new_exception(m, "DriverError", bases,
                                "No media driver answered, or the driver died or timed out under the client.");
    Py_DECREF(bases);
    bases = PyTuple_Pack(2, AeronError, PyExc_ValueError);
    RegistrationError = new_exception(m, "RegistrationError", bases,
                                      "The driver refused a resource: malformed or unsupported channel, bad parameters.");
    Py_DECREF(bases);
    ClosedError = new_exception(m, "ClosedError", AeronError, "A resource was used after it (or its client) was closed.");
    bases = PyTuple_Pack(2, AeronError, PyExc_ValueError);
    PublicationError = new_exception(m, "PublicationError", bases,
                                     "An offer or claim failed for a terminal reason (e.g. message too large).");
    Py_DECREF(bases);
    bases = PyTuple_Pack(2, AeronError, PyExc_ValueError);
    MessageTooLong = new_exception(m, "MessageTooLong", bases,
                                   "Subscription.receive_into: the next message is longer than the buffer given; it stays "
                                   "unconsumed.  Attributes: length (the message's), buffer_length.");
    Py_DECREF(bases);

    m.attr("NOT_CONNECTED") = AERON_PUBLICATION_NOT_CONNECTED;
    m.attr("BACK_PRESSURED") = AERON_PUBLICATION_BACK_PRESSURED;
    m.attr("ADMIN_ACTION") = AERON_PUBLICATION_ADMIN_ACTION;
    m.attr("PUBLICATION_CLOSED") = AERON_PUBLICATION_CLOSED;
    m.attr("MAX_POSITION_EXCEEDED") = AERON_PUBLICATION_MAX_POSITION_EXCEEDED;
    m.attr("ACTION_ABORT") = static_cast<int>(AERON_ACTION_ABORT);
    m.attr("ACTION_BREAK") = static_cast<int>(AERON_ACTION_BREAK);
    m.attr("ACTION_COMMIT") = static_cast<int>(AERON_ACTION_COMMIT);
    m.attr("ACTION_CONTINUE") = static_cast<int>(AERON_ACTION_CONTINUE);
    m.attr("AERON_VERSION") = aeron_version_full();

    py::class_<ImageInfo>(m, "ImageInfo", "An image (one publisher's stream) as seen at an image event.")
        .def_readonly("session_id", &ImageInfo::session_id)
        .def_readonly("correlation_id", &ImageInfo::correlation_id)
        .def_readonly("join_position", &ImageInfo::join_position)
        .def_readonly("source_identity", &ImageInfo::source_identity)
        .def("__repr__", [](const ImageInfo &i) {
            return "ImageInfo(session_id=" + std::to_string(i.session_id) + ", source_identity=" + i.source_identity +
                   ", join_position=" + std::to_string(i.join_position) + ")";
        });

    py::class_<ImageStatus>(m, "ImageStatus", "A snapshot of one image of a subscription.")
        .def_readonly("session_id", &ImageStatus::session_id)
        .def_readonly("correlation_id", &ImageStatus::correlation_id)
        .def_readonly("join_position", &ImageStatus::join_position)
        .def_readonly("position", &ImageStatus::position)
        .def_readonly("is_end_of_stream", &ImageStatus::is_end_of_stream)
        .def_readonly("is_closed", &ImageStatus::is_closed)
        .def_readonly("source_identity", &ImageStatus::source_identity);

    auto client_cls = py::class_<Client, std::shared_ptr<Client>>(m, "Client", "A connection to a media driver (use tickline.transport.Aeron).");
    m.def("connect", &make_client, py::arg("dir") = "", py::arg("driver_timeout_ms") = 10000,
          py::arg("invoker") = false, py::arg("pre_touch") = false, py::arg("client_name") = "",
          py::arg("resource_linger_ns") = -1, py::arg("wait_hook") = py::none(),
          "A Client connected to the media driver in dir (use tickline.transport.Aeron).");
    client_cls.def_readonly("dir", &Client::dir)
        .def_readonly("invoker", &Client::invoker)
        .def_property_readonly("is_closed", [](Client &c) { return c.closed || (c.aeron != nullptr && aeron_is_closed(c.aeron)); })
        .def_property_readonly("driver_lost", [](Client &c) { return c.driver_lost.load(); })
        .def_property_readonly("client_id", [](Client &c) {
            c.check_open("client_id");
            return aeron_client_id(c.aeron);
        })
        .def("do_work", [](Client &c) {
            c.check_open("do_work");
            if (!c.invoker) raise(PyExc_RuntimeError, "do_work() is only for invoker mode: dir=" + c.dir + " invoker=false");
            int n = aeron_main_do_work(c.aeron);
            if (n < 0) raise(DriverError, "client conductor failed: dir=" + c.dir + " error=" + aeron_error_text());
            return n;
        }, "Run one duty cycle of the client conductor (invoker mode only); returns the work count.")
        .def("take_errors", [](Client &c) {
            std::vector<std::pair<int, std::string>> out;
            std::lock_guard<std::mutex> lock(c.errors_mu);
            for (auto &e : c.errors) out.emplace_back(e.code, e.message);
            c.errors.clear();
            return out;
        }, "Errors the conductor reported since the last call, as (code, message) pairs.")
        .def("add_publication", [](Client &c, const std::string &ch, int32_t sid) { return add_publication(c.shared_from_this(), ch, sid, false); },
             py::arg("channel"), py::arg("stream_id"))
        .def("add_exclusive_publication", [](Client &c, const std::string &ch, int32_t sid) { return add_publication(c.shared_from_this(), ch, sid, true); },
             py::arg("channel"), py::arg("stream_id"))
        .def("add_subscription", [](Client &c, const std::string &ch, int32_t sid, py::object on_available, py::object on_unavailable) {
                 return add_subscription(c.shared_from_this(), ch, sid, std::move(on_available), std::move(on_unavailable));
             }, py::arg("channel"), py::arg("stream_id"),
             py::arg("on_available_image") = py::none(), py::arg("on_unavailable_image") = py::none())
        .def("close", [](Client &c) { c.close(); }, "Close the client and every resource it made.");

    auto pub_cls = py::class_<Publication, std::shared_ptr<Publication>>(m, "Publication",
        "A publication (concurrent or exclusive).  Not thread safe when exclusive.");
    pub_cls.def_readonly("channel", &Publication::channel)
        .def_readonly("stream_id", &Publication::stream_id)
        .def_readonly("session_id", &Publication::session_id)
        .def_readonly("registration_id", &Publication::registration_id)
        .def_readonly("max_message_length", &Publication::max_message_length)
        .def_readonly("max_payload_length", &Publication::max_payload_length)
        .def_readonly("term_buffer_length", &Publication::term_buffer_length)
        .def_property_readonly("is_exclusive", [](Publication &p) { return p.xpub != nullptr; })
        .def_property_readonly("is_closed", [](Publication &p) {
            if (!p.usable()) return true;
            return p.xpub ? aeron_exclusive_publication_is_closed(p.xpub) : aeron_publication_is_closed(p.pub);
        })
        .def_property_readonly("is_connected", [](Publication &p) {
            p.check_open();
            return p.xpub ? aeron_exclusive_publication_is_connected(p.xpub) : aeron_publication_is_connected(p.pub);
        })
        .def_property_readonly("position", [](Publication &p) {
            p.check_open();
            return p.xpub ? aeron_exclusive_publication_position(p.xpub) : aeron_publication_position(p.pub);
        })
        .def_property_readonly("position_limit", [](Publication &p) {
            p.check_open();
            return p.xpub ? aeron_exclusive_publication_position_limit(p.xpub) : aeron_publication_position_limit(p.pub);
        })
        .def_property_readonly("channel_status", [](Publication &p) {
            p.check_open();
            return p.xpub ? aeron_exclusive_publication_channel_status(p.xpub) : aeron_publication_channel_status(p.pub);
        })
        .def("add_destination", [](Publication &p, const std::string &uri) {
            p.check_open();
            Client &c = *p.client;
            if (p.xpub) {
                change_destination(c, [&](aeron_async_destination_t **a) { return aeron_exclusive_publication_async_add_destination(a, c.aeron, p.xpub, uri.c_str()); },
                                   aeron_exclusive_publication_async_destination_poll, "add_destination", uri);
            } else {
                change_destination(c, [&](aeron_async_destination_t **a) { return aeron_publication_async_add_destination(a, c.aeron, p.pub, uri.c_str()); },
                                   aeron_publication_async_destination_poll, "add_destination", uri);
            }
        }, py::arg("uri"), "Add a destination to a manual multi-destination-cast publication (control-mode=manual).")
        .def("remove_destination", [](Publication &p, const std::string &uri) {
            p.check_open();
            Client &c = *p.client;
            if (p.xpub) {
                change_destination(c, [&](aeron_async_destination_t **a) { return aeron_exclusive_publication_async_remove_destination(a, c.aeron, p.xpub, uri.c_str()); },
                                   aeron_exclusive_publication_async_destination_poll, "remove_destination", uri);
            } else {
                change_destination(c, [&](aeron_async_destination_t **a) { return aeron_publication_async_remove_destination(a, c.aeron, p.pub, uri.c_str()); },
                                   aeron_publication_async_destination_poll, "remove_destination", uri);
            }
        }, py::arg("uri"), "Remove a destination from a manual multi-destination-cast publication.")
        .def("close", [](Publication &p) { p.close(); });

    auto sub_cls = py::class_<Subscription, std::shared_ptr<Subscription>>(m, "Subscription",
        "A subscription: poll it from one thread.");
    sub_cls.def_readonly("channel", &Subscription::channel)
        .def_readonly("stream_id", &Subscription::stream_id)
        .def_readonly("registration_id", &Subscription::registration_id)
        .def_property_readonly("is_closed", [](Subscription &s) { return !s.usable() || aeron_subscription_is_closed(s.sub); })
        .def_property_readonly("is_connected", [](Subscription &s) {
            s.check_open();
            return aeron_subscription_is_connected(s.sub);
        })
        .def_property_readonly("channel_status", [](Subscription &s) {
            s.check_open();
            return aeron_subscription_channel_status(s.sub);
        })
        .def_property_readonly("image_count", [](Subscription &s) {
            s.check_open();
            return aeron_subscription_image_count(s.sub);
        })
        .def("images", [](Subscription &s) {
            s.check_open();
            std::vector<ImageStatus> out;
            int n = aeron_subscription_image_count(s.sub);
            for (int i = 0; i < n; i++) {
                aeron_image_t *img = aeron_subscription_image_at_index(s.sub, static_cast<size_t>(i));
                if (img == nullptr) continue;
                out.push_back(image_status(img));
                aeron_subscription_image_release(s.sub, img);
            }
            return out;
        }, "Snapshots of the current images.")
        .def("image_status", [](Subscription &s, int32_t session_id) -> py::object {
            s.check_open();
            aeron_image_t *img = aeron_subscription_image_by_session_id(s.sub, session_id);
            if (img == nullptr) return py::none();
            ImageStatus st = image_status(img);
            aeron_subscription_image_release(s.sub, img);
            return py::cast(st);
        }, py::arg("session_id"), "Snapshot of the image with this session id, or None.")
        .def("poll_image", [](Subscription &s, int32_t session_id, py::object handler, int fragment_limit, bool controlled) {
            s.check_open();
            if (fragment_limit <= 0) raise(PyExc_ValueError, "fragment_limit must be > 0: fragment_limit=" + std::to_string(fragment_limit));
            int n = poll_image(s, session_id, handler.ptr(), fragment_limit, controlled);
            if (n == -1) throw py::error_already_set();
            if (n == -2) raise(PyExc_LookupError, "no image with this session id: session_id=" + std::to_string(session_id) +
                                                      " channel=" + s.channel + " stream_id=" + std::to_string(s.stream_id));
            return n;
        }, py::arg("session_id"), py::arg("handler"), py::arg("fragment_limit"), py::arg("controlled") = false,
           "Poll only the image with this session id.")
        .def("add_destination", [](Subscription &s, const std::string &uri) {
            s.check_open();
            Client &c = *s.client;
            change_destination(c, [&](aeron_async_destination_t **a) { return aeron_subscription_async_add_destination(a, c.aeron, s.sub, uri.c_str()); },
                               aeron_subscription_async_destination_poll, "add_destination", uri);
        }, py::arg("uri"), "Add a destination to a multi-destination subscription (channel aeron:udp?control-mode=manual).")
        .def("remove_destination", [](Subscription &s, const std::string &uri) {
            s.check_open();
            Client &c = *s.client;
            change_destination(c, [&](aeron_async_destination_t **a) { return aeron_subscription_async_remove_destination(a, c.aeron, s.sub, uri.c_str()); },
                               aeron_subscription_async_destination_poll, "remove_destination", uri);
        }, py::arg("uri"), "Remove a destination from a multi-destination subscription.")
        .def("dispatch_image_events", [](Subscription &s) {
            s.check_open();
            dispatch_image_events(s);
        }, "Run pending image available/unavailable callbacks now (poll does this too).")
        .def("close", [](Subscription &s) { s.close(); },
             "Close the subscription; from a handler or callback of its poll, the close takes effect at the end of that poll "
             "and nothing more is delivered.");

    refuse_direct_construction(client_cls);
    refuse_direct_construction(pub_cls);
    refuse_direct_construction(sub_cls);
    init_fastpath(m, client_cls, pub_cls, sub_cls);
    init_driver(m);
    init_bench(m);
    init_fixcodec(m);
    init_fixbridge(m);
    init_fixstore(m);
    init_syncer(m);
    init_hmac(m);
    init_archive(m);
    init_counter(m);
    init_mdencode(m);
    init_batch(m);
}
