// Benchmark helpers that must not run in the interpreter.
#include "tickline_aeron.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace tickline {

namespace {

bool pin_current_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

inline int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median round trip of a cache line between two threads pinned to cpu_a and
// cpu_b: the floor under any shared-memory IPC round trip on this machine.
// The host may move vCPUs, so benchmarks probe it before and after a run.
int64_t core_to_core_rtt_ns(int cpu_a, int cpu_b, int iterations) {
    alignas(64) std::atomic<int64_t> ping{0};
    alignas(64) std::atomic<int64_t> pong{0};
    std::atomic<bool> pinned_ok{true};
    std::thread responder([&] {
        if (!pin_current_thread(cpu_b)) pinned_ok = false;
        for (int64_t i = 1; i <= iterations; i++) {
            while (ping.load(std::memory_order_acquire) != i) {
            }
            pong.store(i, std::memory_order_release);
        }
    });
    if (!pin_current_thread(cpu_a)) pinned_ok = false;
    std::vector<int64_t> samples;
    samples.reserve(static_cast<size_t>(iterations));
    for (int64_t i = 1; i <= iterations; i++) {
        int64_t t0 = now_ns();
        ping.store(i, std::memory_order_release);
        while (pong.load(std::memory_order_acquire) != i) {
        }
        samples.push_back(now_ns() - t0);
    }
    responder.join();
    // Give the caller's thread its whole affinity back.
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int c = 0; c < CPU_SETSIZE; c++) CPU_SET(c, &all);
    pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
    if (!pinned_ok) return -1;
    std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
    return samples[samples.size() / 2];
}

}  // namespace

void init_bench(py::module_ &m) {
    m.def("core_to_core_rtt_ns", [](int cpu_a, int cpu_b, int iterations) {
        if (iterations <= 0 || iterations > 10'000'000) {
            raise(PyExc_ValueError, "iterations out of range: iterations=" + std::to_string(iterations) + " expected=1..10000000");
        }
        py::gil_scoped_release nogil;
        return core_to_core_rtt_ns(cpu_a, cpu_b, iterations);
    }, py::arg("cpu_a"), py::arg("cpu_b"), py::arg("iterations") = 100000,
       "Median cache-line round trip in ns between two threads pinned to cpu_a and cpu_b (-1 if pinning failed).");
}

}  // namespace tickline
