// The embedded C media driver.  (A driver's CnC file is read in Python, as
// untrusted bytes: tickline/transport/cnc.py.)
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

    // The CnC file is read in Python, as untrusted bytes (tickline/transport/cnc.py): Aeron's C
    // reader follows the file's lengths unchecked.
    m.def("epoch_ms", [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    });
}

}  // namespace tickline
