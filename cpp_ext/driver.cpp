// The embedded C media driver and read-only access to a driver's CnC file
// (counters, error log, liveness) for `tickline stat` and driver checks.
#include "tickline_aeron.h"

#include <pybind11/stl.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>

#include <sys/stat.h>
#include <sys/types.h>

extern "C" {
#include "aeronmd.h"
#include "aeron_driver_context.h"  // raw_log_map_func: where the driver creates log buffers
}

namespace tickline {

namespace {

// Aeron's driver reads its configuration from the environment at context
// init (property aeron.x.y is variable AERON_X_Y).  Options are applied that
// way, then the environment is put back as it was, so one embedded driver's
// options don't leak into later drivers or clients of this process.
std::string property_to_env(const std::string &name) {
    std::string env;
    for (char ch : name) env += ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return env;
}

struct EnvOverride {
    std::vector<std::pair<std::string, std::optional<std::string>>> saved;
    explicit EnvOverride(const std::map<std::string, std::string> &options) {
        for (auto &[k, v] : options) {
            std::string env = property_to_env(k);
            const char *old = std::getenv(env.c_str());
            saved.emplace_back(env, old ? std::optional<std::string>(old) : std::nullopt);
            setenv(env.c_str(), v.c_str(), 1);
        }
    }
    ~EnvOverride() {
        for (auto &[env, old] : saved) {
            if (old) setenv(env.c_str(), old->c_str(), 1);
            else unsetenv(env.c_str());
        }
    }
};

// Private files.  Aeron creates its directories 0777 and its files 0666 less
// the umask.  The driver directory, its publications/ and images/ directories,
// cnc.dat and the loss report are all created in aeron_driver_init, which runs
// under a umask of 077 (007 with group access) added to the process's; log
// buffers are created later, on the driver's thread, so each is given the mode
// of its directory (less execute bits) right after it is created -- it is never
// reachable by others before, its directory being 0700 (0770) already.
int map_private_raw_log(aeron_mapped_raw_log_t *log, const char *path, bool sparse, uint64_t term_length,
                        uint64_t page_size) {
    if (aeron_raw_log_map(log, path, sparse, term_length, page_size) < 0) return -1;
    std::string parent(path);
    size_t slash = parent.rfind('/');
    struct stat st;
    if (slash != std::string::npos && ::stat(parent.substr(0, slash).c_str(), &st) == 0) {
        ::chmod(path, st.st_mode & 0660);  // user (and group) read/write, never other
    }
    return 0;
}

struct UmaskScope {
    mode_t old;
    explicit UmaskScope(mode_t add) : old(::umask(0)) { ::umask(old | add); }
    ~UmaskScope() { ::umask(old); }
};

class EmbeddedDriver {
  public:
    EmbeddedDriver(const std::string &dir, const std::map<std::string, std::string> &options, bool manual,
                   bool group_access)
        : manual_(manual) {
        for (auto &[k, v] : options) {
            if (k.rfind("aeron.", 0) != 0) {
                raise(PyExc_ValueError, "driver option must be an Aeron property name: option=" + k + " expected=aeron.*");
            }
        }
        {
            EnvOverride env(options);
            if (aeron_driver_context_init(&ctx_) < 0) {
                raise(RegistrationError, "driver configuration rejected: dir=" + dir + " error=" + aeron_error_text());
            }
        }
        aeron_driver_context_set_dir(ctx_, dir.c_str());
        if (manual) aeron_driver_context_set_threading_mode(ctx_, AERON_THREADING_MODE_INVOKER);
        ctx_->raw_log_map_func = map_private_raw_log;
        dir_ = dir;
        int rc;
        {
            py::gil_scoped_release nogil;
            UmaskScope private_files(group_access ? 007 : 077);
            rc = aeron_driver_init(&driver_, ctx_);
        }
        if (rc < 0) {
            std::string err = aeron_error_text();
            aeron_driver_context_close(ctx_);
            ctx_ = nullptr;
            raise(DriverError, "media driver failed to start: dir=" + dir + " error=" + err);
        }
        if (aeron_driver_start(driver_, manual) < 0) {
            std::string err = aeron_error_text();
            close();
            raise(DriverError, "media driver failed to start: dir=" + dir + " error=" + err);
        }
    }

    ~EmbeddedDriver() { close(); }

    int do_work() {
        if (driver_ == nullptr) raise(ClosedError, "media driver is closed: dir=" + dir_);
        if (!manual_) raise(PyExc_RuntimeError, "do_work() needs an invoker-mode driver: dir=" + dir_ + " invoker=false");
        return aeron_driver_main_do_work(driver_);
    }

    void close() {
        if (driver_ != nullptr) {
            py::gil_scoped_release nogil;  // joins the driver's threads
            aeron_driver_close(driver_);
            driver_ = nullptr;
        }
        if (ctx_ != nullptr) {
            aeron_driver_context_close(ctx_);  // deletes the directory when so configured
            ctx_ = nullptr;
        }
    }

    // The fast path of do_work: no exceptions thrown, for callers holding a raw pointer.
    int try_do_work() {
        if (driver_ == nullptr || !manual_) return -1;
        return aeron_driver_main_do_work(driver_);
    }

    bool is_closed() const { return driver_ == nullptr; }
    const std::string &dir() const { return dir_; }
    bool manual() const { return manual_; }

  private:
    aeron_driver_context_t *ctx_ = nullptr;
    aeron_driver_t *driver_ = nullptr;
    std::string dir_;
    bool manual_;
};

struct Counter {
    int32_t id;
    int32_t type_id;
    int64_t value;
    std::string label;
    py::bytes key;
};

struct ErrorEntry {
    int32_t count;
    int64_t first_timestamp_ms;
    int64_t last_timestamp_ms;
    std::string text;
};

struct CncSnapshot {
    std::string filename;
    int32_t cnc_version;
    int64_t pid;
    int64_t start_timestamp_ms;
    int64_t client_liveness_timeout_ns;
    int64_t heartbeat_ms;
    std::vector<Counter> counters;
    std::vector<ErrorEntry> errors;
};

struct RawCounter {
    int32_t id;
    int32_t type_id;
    int64_t value;
    std::string label;
    std::string key;
};

void collect_counter(int64_t value, int32_t id, int32_t type_id, const uint8_t *key, size_t key_length,
                     const char *label, size_t label_length, void *clientd) {
    static_cast<std::vector<RawCounter> *>(clientd)->push_back(
        {id, type_id, value, std::string(label, label_length), std::string(reinterpret_cast<const char *>(key), key_length)});
}

void collect_error(int32_t count, int64_t first, int64_t last, const char *error, size_t length, void *clientd) {
    static_cast<std::vector<ErrorEntry> *>(clientd)->push_back({count, first, last, std::string(error, length)});
}

CncSnapshot read_cnc(const std::string &dir, int64_t timeout_ms, bool with_counters, bool with_errors) {
    aeron_cnc_t *cnc = nullptr;
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = aeron_cnc_init(&cnc, dir.c_str(), timeout_ms);
    }
    if (rc < 0) raise(DriverError, "no driver CnC file to read: dir=" + dir + " error=" + aeron_error_text());
    aeron_cnc_constants_t k;
    aeron_cnc_constants(cnc, &k);
    CncSnapshot snap;
    snap.filename = aeron_cnc_filename(cnc);
    snap.cnc_version = k.cnc_version;
    snap.pid = k.pid;
    snap.start_timestamp_ms = k.start_timestamp;
    snap.client_liveness_timeout_ns = k.client_liveness_timeout;
    snap.heartbeat_ms = aeron_cnc_to_driver_heartbeat(cnc);
    std::vector<RawCounter> raw;
    if (with_counters) aeron_counters_reader_foreach_counter(aeron_cnc_counters_reader(cnc), collect_counter, &raw);
    if (with_errors) aeron_cnc_error_log_read(cnc, collect_error, &snap.errors, 0);
    aeron_cnc_close(cnc);
    for (auto &r : raw) snap.counters.push_back({r.id, r.type_id, r.value, r.label, py::bytes(r.key)});
    return snap;
}

}  // namespace

int embedded_driver_do_work(PyObject *obj) {
    EmbeddedDriver *d = checked_self<EmbeddedDriver>(obj, "EmbeddedDriver", "turn");
    if (d == nullptr) return -1;
    int n = d->try_do_work();
    if (n < 0) PyErr_Format(PyExc_RuntimeError, "driver is closed or not in invoker mode: dir=%s", d->dir().c_str());
    return n;
}

void init_driver(py::module_ &m) {
    auto driver_cls = py::class_<EmbeddedDriver>(m, "EmbeddedDriver",
        "The C media driver in this process (use tickline.transport.MediaDriver).");
    refuse_direct_construction(driver_cls);
    m.def("start_embedded_driver", [](const std::string &dir, const std::map<std::string, std::string> &options, bool invoker,
                                      bool group_access) {
        return std::make_unique<EmbeddedDriver>(dir, options, invoker, group_access);
    }, py::arg("dir"), py::arg("options") = std::map<std::string, std::string>{}, py::arg("invoker") = false,
       py::arg("group_access") = false,
       "Start the C media driver in this process (use tickline.transport.MediaDriver.embedded): its directories\n"
       "are 0700 and its files 0600 (0770 and 0660 with group_access).");
    driver_cls
        .def_property_readonly("dir", [](EmbeddedDriver &d) { return d.dir(); })
        .def_property_readonly("invoker", [](EmbeddedDriver &d) { return d.manual(); })
        .def_property_readonly("is_closed", [](EmbeddedDriver &d) { return d.is_closed(); })
        .def("do_work", [](EmbeddedDriver &d) { return d.do_work(); }, "One duty cycle of an invoker-mode driver; returns the work count.")
        .def("close", [](EmbeddedDriver &d) { d.close(); });

    py::class_<Counter>(m, "Counter")
        .def_readonly("id", &Counter::id)
        .def_readonly("type_id", &Counter::type_id)
        .def_readonly("value", &Counter::value)
        .def_readonly("label", &Counter::label)
        .def_readonly("key", &Counter::key)
        .def("__repr__", [](const Counter &c) {
            return "Counter(id=" + std::to_string(c.id) + ", type_id=" + std::to_string(c.type_id) +
                   ", value=" + std::to_string(c.value) + ", label=" + c.label + ")";
        });
    py::class_<ErrorEntry>(m, "ErrorEntry")
        .def_readonly("count", &ErrorEntry::count)
        .def_readonly("first_timestamp_ms", &ErrorEntry::first_timestamp_ms)
        .def_readonly("last_timestamp_ms", &ErrorEntry::last_timestamp_ms)
        .def_readonly("text", &ErrorEntry::text);
    py::class_<CncSnapshot>(m, "CncSnapshot")
        .def_readonly("filename", &CncSnapshot::filename)
        .def_readonly("cnc_version", &CncSnapshot::cnc_version)
        .def_readonly("pid", &CncSnapshot::pid)
        .def_readonly("start_timestamp_ms", &CncSnapshot::start_timestamp_ms)
        .def_readonly("client_liveness_timeout_ns", &CncSnapshot::client_liveness_timeout_ns)
        .def_readonly("heartbeat_ms", &CncSnapshot::heartbeat_ms)
        .def_readonly("counters", &CncSnapshot::counters)
        .def_readonly("errors", &CncSnapshot::errors);
    m.def("read_cnc", &read_cnc, py::arg("dir"), py::arg("timeout_ms") = 0, py::arg("counters") = true,
          py::arg("errors") = true,
          "Read a driver's CnC file: constants, heartbeat, counters and distinct errors.");
    m.def("epoch_ms", [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    });
}

}  // namespace tickline
