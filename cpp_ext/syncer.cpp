// Syncer: fsync/fdatasync on a native thread, so a cluster member's duty cycle
// keeps turning its transport while its log is made durable.
//
// A Python thread would not do: after the system call it needs the GIL back,
// and a duty cycle that spins holds the GIL for up to the switch interval
// (5 ms), which is longer than the fsync.  This thread never touches Python;
// the caller polls completed() (an atomic load) or blocks in wait().
//
// Requests complete in submission order.  Requests queued while the thread was
// busy are served together: each file once, with fsync if any request asked
// for it and fdatasync otherwise, then all of them complete at once.
//
// The caller keeps every submitted descriptor open until its request has
// completed (cluster/disk.py drains before it closes a file).
#include "tickline_aeron.h"

#include <pybind11/stl.h>

#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace tickline {

namespace {

class Syncer {
public:
    Syncer() : thread_([this] { run(); }) {}
    Syncer(const Syncer &) = delete;
    Syncer &operator=(const Syncer &) = delete;
    ~Syncer() { stop(); }  // no Python here: the worker never needs the GIL, so joining while holding it is safe

    // Queues one request; returns its ticket (1, 2, ...).
    int64_t submit(const std::vector<std::pair<int, bool>> &files) {
        for (const auto &f : files) {
            if (f.first < 0) raise(PyExc_ValueError, "sync of a negative file descriptor: fd=" + std::to_string(f.first));
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) raise(PyExc_RuntimeError, "Syncer is closed");
        const int64_t ticket = ++submitted_;
        queue_.push_back({ticket, files});
        work_.notify_one();
        return ticket;
    }

    // The highest ticket whose files are durable; raises OSError once a sync failed.
    int64_t completed() {
        check_failed();
        return completed_.load(std::memory_order_acquire);
    }

    // Blocks (without the GIL) until ``ticket`` completed.
    void wait(int64_t ticket) {
        {
            py::gil_scoped_release nogil;
            std::unique_lock<std::mutex> lock(mu_);
            done_.wait(lock, [&] { return failed_errno_ != 0 || completed_.load(std::memory_order_acquire) >= ticket || ticket > submitted_; });
        }
        check_failed();
        if (ticket > completed_.load(std::memory_order_acquire)) {
            raise(PyExc_ValueError, "wait for a ticket never submitted: ticket=" + std::to_string(ticket) +
                                        " submitted=" + std::to_string(submitted_));
        }
    }

    int64_t submitted() {
        std::lock_guard<std::mutex> lock(mu_);
        return submitted_;
    }

    // Serves what is queued, then stops the thread.  Idempotent.
    void close() {
        py::gil_scoped_release nogil;
        stop();
    }

private:
    struct Request {
        int64_t ticket;
        std::vector<std::pair<int, bool>> files;
    };

    void stop() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;
            work_.notify_one();
        }
        if (thread_.joinable()) thread_.join();
    }

    void check_failed() {
        int err;
        int fd;
        int64_t ticket;
        {
            std::lock_guard<std::mutex> lock(mu_);
            err = failed_errno_;
            fd = failed_fd_;
            ticket = failed_ticket_;
        }
        if (err != 0) {
            std::string msg = "fsync failed on the sync thread: fd=" + std::to_string(fd) + " ticket=" + std::to_string(ticket) +
                              " error=" + std::strerror(err);
            PyErr_SetObject(PyExc_OSError, py::make_tuple(err, msg).ptr());
            throw py::error_already_set();
        }
    }

    void run() {
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, nothing left to serve
            std::deque<Request> batch;
            batch.swap(queue_);
            lock.unlock();
            std::map<int, bool> files;  // fd -> full fsync wanted
            for (const auto &r : batch) {
                for (const auto &f : r.files) files[f.first] = files[f.first] || f.second;
            }
            int err = 0;
            int bad_fd = -1;
            for (const auto &f : files) {
                int rc;
                do {
                    rc = f.second ? ::fsync(f.first) : ::fdatasync(f.first);
                } while (rc != 0 && errno == EINTR);
                if (rc != 0) {
                    err = errno;
                    bad_fd = f.first;
                    break;
                }
            }
            lock.lock();
            if (err != 0) {
                // Nothing after a failed sync is known durable: stop completing.
                failed_errno_ = err;
                failed_fd_ = bad_fd;
                failed_ticket_ = batch.front().ticket;
                queue_.clear();
                done_.notify_all();
                return;
            }
            completed_.store(batch.back().ticket, std::memory_order_release);
            done_.notify_all();
        }
    }

    std::mutex mu_;
    std::condition_variable work_;
    std::condition_variable done_;
    std::deque<Request> queue_;
    int64_t submitted_ = 0;
    std::atomic<int64_t> completed_{0};
    bool stopping_ = false;
    int failed_errno_ = 0;
    int failed_fd_ = -1;
    int64_t failed_ticket_ = 0;
    std::thread thread_;  // last: started once everything above is constructed
};

}  // namespace

void init_syncer(py::module_ &m) {
    py::class_<Syncer>(m, "Syncer", "fsync/fdatasync on a native thread; requests complete in submission order")
        .def(py::init<>())
        .def("submit", &Syncer::submit, py::arg("files"),
             "submit([(fd, full), ...]) -> ticket: make the files durable (full: fsync, else fdatasync)")
        .def("completed", &Syncer::completed, "The highest completed ticket (OSError if a sync failed)")
        .def("wait", &Syncer::wait, py::arg("ticket"), "Block, without the GIL, until the ticket completed")
        .def_property_readonly("submitted", &Syncer::submitted)
        .def("close", &Syncer::close, "Serve what is queued, then stop the thread");
}

}  // namespace tickline
