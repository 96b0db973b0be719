// Counters a component owns in the driver's CnC file (aeron_async_add_counter),
// so that `tickline stat` shows them beside the driver's: the FIX gateway's
// sessions and messages, a cluster member's positions and role, the archive's
// recording positions, a strategy's orders by outcome.
//
// A counter's value is one int64 slot in the CnC file's counter values,
// mapped by the client; writes are plain release stores (readers in other
// processes load with acquire).  When the client closes, aeron_close unmaps
// that memory and frees the counter, so every access checks the client first:
// after close (the counter's or the client's) writes are ignored and reads
// raise ClosedError.
//
// Threading: used from Python threads holding the GIL, like the client.
#include "tickline_aeron.h"

#include <chrono>
#include <climits>
#include <string>
#include <thread>

namespace tickline {

namespace {

constexpr size_t kMaxLabel = AERON_COUNTER_MAX_LABEL_LENGTH;  // 380 bytes
constexpr size_t kMaxKey = AERON_COUNTER_MAX_KEY_LENGTH;      // 112 bytes

// The longest prefix of s within max bytes that does not cut a UTF-8 sequence.
std::string utf8_prefix(const std::string &s, size_t max) {
    if (s.size() <= max) return s;
    size_t n = max;
    // back over continuation bytes (10xxxxxx) to the start of the cut sequence
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

struct AeronCounter {
    std::shared_ptr<Client> client;
    aeron_counter_t *counter = nullptr;
    int64_t *addr = nullptr;
    int32_t id = -1;
    int32_t type_id = 0;
    int64_t registration_id = -1;
    std::string label;
    bool closed = false;

    bool usable() const { return !closed && counter != nullptr && !client->closed; }

    void set(int64_t value) {
        if (usable()) __atomic_store_n(addr, value, __ATOMIC_RELEASE);
    }

    // Adds delta, saturating at the int64 range (a counter never wraps to a negative total).
    void add(int64_t delta) {
        if (!usable()) return;
        int64_t cur = __atomic_load_n(addr, __ATOMIC_RELAXED);
        int64_t next;
        do {
            if (__builtin_add_overflow(cur, delta, &next)) next = delta > 0 ? INT64_MAX : INT64_MIN;
        } while (!__atomic_compare_exchange_n(addr, &cur, next, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    }

    int64_t get() const {
        if (!usable()) {
            raise(ClosedError, "counter is closed: id=" + std::to_string(id) + " label=" + label +
                                   (closed ? " reason=closed by user" : " reason=client closed"));
        }
        return __atomic_load_n(addr, __ATOMIC_ACQUIRE);
    }

    // Idempotent.  After the client closed there is nothing to release: aeron_close freed it.
    void close() {
        if (usable()) aeron_counter_close(counter, nullptr, nullptr);
        closed = true;
    }

    ~AeronCounter() { close(); }
};

std::shared_ptr<AeronCounter> add_counter(std::shared_ptr<Client> client, int32_t type_id, const std::string &label,
                                          const py::bytes &key_obj) {
    client->check_open("add_counter");
    std::string key = key_obj;
    if (key.size() > kMaxKey) {
        raise(PyExc_ValueError, "counter key too long: fault=user length=" + std::to_string(key.size()) +
                                    " max=" + std::to_string(kMaxKey));
    }
    std::string lbl = utf8_prefix(label, kMaxLabel);
    aeron_async_add_counter_t *async = nullptr;
    if (aeron_async_add_counter(&async, client->aeron, type_id, reinterpret_cast<const uint8_t *>(key.data()), key.size(),
                                lbl.data(), lbl.size()) < 0) {
        raise(RegistrationError, "counter registration failed: type_id=" + std::to_string(type_id) + " label=" + lbl +
                                     " error=" + aeron_error_text());
    }
    auto c = std::make_shared<AeronCounter>();
    c->client = client;
    c->type_id = type_id;
    c->label = lbl;
    // The client conductor answers every request (the driver's reply or its own timeout), so this ends.
    for (int spins = 0;; ++spins) {
        int rc = aeron_async_add_counter_poll(&c->counter, async);
        if (rc > 0) break;
        if (rc == 0 && (client->driver_lost.load() || aeron_is_closed(client->aeron))) {
            raise(DriverError, "counter registration abandoned: media driver lost: label=" + lbl + " dir=" + client->dir);
        }
        if (rc < 0) {
            raise(RegistrationError, "counter registration failed: type_id=" + std::to_string(type_id) + " label=" + lbl +
                                         " error=" + aeron_error_text());
        }
        if (client->invoker) {
            aeron_main_do_work(client->aeron);
            if (!client->wait_hook.is_none()) client->wait_hook();
        } else {
            py::gil_scoped_release nogil;
            std::this_thread::sleep_for(std::chrono::microseconds(spins < 100 ? 10 : 1000));
        }
        if (spins % 64 == 63 && PyErr_CheckSignals() < 0) {
            // the registration completes in the conductor regardless; the counter goes with the client
            throw py::error_already_set();
        }
    }
    c->addr = aeron_counter_addr(c->counter);
    aeron_counter_constants_t k;
    if (aeron_counter_constants(c->counter, &k) == 0) {
        c->id = k.counter_id;
        c->registration_id = k.registration_id;
    }
    return c;
}

}  // namespace

void init_counter(py::module_ &m) {
    // Made only by add_counter (a factory, like the client's objects): a counter made with
    // cls.__new__(cls) would have no C++ object behind it.
    auto cls = py::class_<AeronCounter, std::shared_ptr<AeronCounter>>(m, "AeronCounter",
        "A counter this process owns in the driver's CnC file (tickline stat shows it).  Made by\n"
        "tickline.transport.Aeron.add_counter.  After close() (or the client's close) writes are\n"
        "ignored and get() raises ClosedError.");
    refuse_direct_construction(cls);
    cls.def_readonly("id", &AeronCounter::id)
        .def_readonly("type_id", &AeronCounter::type_id)
        .def_readonly("registration_id", &AeronCounter::registration_id)
        .def_readonly("label", &AeronCounter::label)
        .def_property_readonly("is_closed", [](const AeronCounter &c) { return !c.usable(); })
        .def("set", &AeronCounter::set, py::arg("value"), "Store value (release).")
        .def("add", &AeronCounter::add, py::arg("delta") = 1, "Add delta, saturating at the int64 range.")
        .def("get", &AeronCounter::get, "The current value (acquire); ClosedError after close.")
        .def("close", &AeronCounter::close, "Free the counter in the driver; idempotent.")
        .def("__repr__", [](const AeronCounter &c) {
            return "AeronCounter(id=" + std::to_string(c.id) + ", type_id=" + std::to_string(c.type_id) +
                   ", label=" + c.label + (c.usable() ? ")" : ", closed)");
        });
    m.def("add_counter", &add_counter, py::arg("client"), py::arg("type_id"), py::arg("label"),
          py::arg("key") = py::bytes(),
          "Register a counter of client's with the driver (blocks until the driver answers).");
}

}  // namespace tickline
