// qfpeer: a QuickFIX counterparty for tickline's interop tests.
//
// Usage: qfpeer CONFIG_FILE   (a QuickFIX settings file; ConnectionType picks initiator or acceptor)
// Every callback prints one line on stdout: "EVENT key=value ..." with the message in |-separated form.
// Commands on stdin, one per line:
//   order CLORDID   send a NewOrderSingle (stored and sent later when not logged on, as QuickFIX does)
//   logout          log the session out (an initiator then stays down until "logon")
//   logon           let the session log on again
//   seqnums         print "SEQNUMS sender=N target=M"
//   quiet           stop printing per-message lines (for benchmarks)
//   bench N [FILE]  N sequential NewOrderSingle -> filled ExecutionReport round trips; prints
//                   "BENCH n=N p50_us=.. p99_us=.. max_us=.. msgs_per_s=.."
//                   (with FILE: also every round trip in ns, one per line, to FILE)
//   burst N         send N orders back to back, wait for all N fills; prints "BURST n=N msgs_per_s=.."
//   quit            stop and exit
// An incoming NewOrderSingle is answered with a filled ExecutionReport valid for the session's version.
#include <quickfix/Application.h>
#include <quickfix/FileStore.h>
#include <quickfix/FileLog.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>
#include <quickfix/SocketInitiator.h>
#include <quickfix/Message.h>
#include <quickfix/Values.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <cstdlib>
#include <iostream>
#include <vector>
#include <memory>
#include <mutex>
#include <set>
#include <string>

// QuickFIX 1.15 (Debian bookworm) declares dynamic exception specifications; 1.16 has the EXCEPT macro.
#ifdef EXCEPT
#define QF_THROWS(...) EXCEPT(__VA_ARGS__)
#else
#define QF_THROWS(...) throw(__VA_ARGS__)
#endif

static std::mutex out_mutex;
static int exec_id = 0;
static std::atomic<bool> quiet{false};
static std::mutex fill_mutex;
static std::condition_variable fill_cv;
static long fills = 0;  // filled ExecutionReports received

static std::string bars(const std::string& s) {
  std::string r = s;
  for (auto& c : r) if (c == '\x01') c = '|';
  return r;
}

static void say(const std::string& line) {
  if (quiet && line.rfind("TO", 0) == 0) return;
  if (quiet && line.rfind("FROM", 0) == 0) return;
  std::lock_guard<std::mutex> g(out_mutex);
  std::cout << line << std::endl;
}

class Peer : public FIX::Application {
 public:
  FIX::SessionID session;
  void onCreate(const FIX::SessionID& id) override { session = id; say("CREATE session=" + id.toString()); }
  void onLogon(const FIX::SessionID& id) override { say("LOGON session=" + id.toString()); }
  void onLogout(const FIX::SessionID& id) override { say("LOGOUT session=" + id.toString()); }
  const FIX::SessionSettings* settings = nullptr;
  // Username/Password in the session's settings go on its Logon, the way QuickFIX users add
  // credentials (QuickFIX has no setting for them)
  void toAdmin(FIX::Message& m, const FIX::SessionID& id) override {
    FIX::MsgType type;
    m.getHeader().getField(type);
    if (type == FIX::MsgType_Logon && settings != nullptr && settings->get(id).has("Username")) {
      m.setField(FIX::Username(settings->get(id).getString("Username")));
      m.setField(FIX::Password(settings->get(id).getString("Password")));
    }
    say("TOADMIN msg=" + bars(m.toString()));
  }
  void toApp(FIX::Message& m, const FIX::SessionID&) QF_THROWS(FIX::DoNotSend) override { say("TOAPP msg=" + bars(m.toString())); }
  void fromAdmin(const FIX::Message& m, const FIX::SessionID&)
      QF_THROWS(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {
    say("FROMADMIN msg=" + bars(m.toString()));
  }
  void fromApp(const FIX::Message& m, const FIX::SessionID& id)
      QF_THROWS(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    say("FROMAPP msg=" + bars(m.toString()));
    FIX::MsgType type;
    m.getHeader().getField(type);
    if (type.getValue() == "8" && m.isSetField(39) && m.getField(39) == "2") {
      std::lock_guard<std::mutex> g(fill_mutex);
      ++fills;
      fill_cv.notify_all();
      return;
    }
    if (type.getValue() != "D") return;
    const std::string begin = id.getBeginString().getValue();
    FIX::Message er;
    er.getHeader().setField(FIX::MsgType("8"));
    er.setField(37, "QF-" + m.getField(11));
    er.setField(17, "QFE-" + std::to_string(++exec_id));
    if (begin == "FIX.4.2") er.setField(20, "0");  // ExecTransType exists only up to 4.2
    er.setField(150, begin == "FIX.4.2" ? "2" : "F");
    er.setField(39, "2");
    er.setField(11, m.getField(11));
    er.setField(55, m.getField(55));
    er.setField(54, m.getField(54));
    er.setField(38, m.getField(38));
    er.setField(32, m.getField(38));
    er.setField(31, m.isSetField(44) ? m.getField(44) : "0");
    er.setField(151, "0");
    er.setField(14, m.getField(38));
    er.setField(6, m.isSetField(44) ? m.getField(44) : "0");
    FIX::Session::sendToTarget(er, id);
  }
};

static void send_order(const FIX::SessionID& sid, const std::string& clordid, int qty) {
  FIX::Message nos;
  nos.getHeader().setField(FIX::MsgType("D"));
  nos.setField(11, clordid);
  if (sid.getBeginString().getValue() == "FIX.4.2") nos.setField(21, "1");
  nos.setField(55, "AF");
  nos.setField(54, "1");
  nos.setField(60, FIX::UtcTimeStampField(60).getString());
  nos.setField(38, std::to_string(qty));
  nos.setField(40, "2");
  nos.setField(44, "10.5");
  FIX::Session::sendToTarget(nos, sid);
}

static bool wait_fills(long target, int timeout_s) {
  std::unique_lock<std::mutex> l(fill_mutex);
  return fill_cv.wait_for(l, std::chrono::seconds(timeout_s), [&] { return fills >= target; });
}

static long fills_now() {
  std::lock_guard<std::mutex> g(fill_mutex);
  return fills;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: qfpeer CONFIG_FILE" << std::endl;
    return 2;
  }
  try {
    FIX::SessionSettings settings(argv[1]);
    Peer app;
    app.settings = &settings;
    FIX::FileStoreFactory store(settings);
    FIX::FileLogFactory log(settings);
    const bool nolog = std::getenv("QFPEER_NOLOG") != nullptr;
    std::unique_ptr<FIX::Initiator> ini;
    std::unique_ptr<FIX::Acceptor> acc;
    const std::string type = settings.get().getString("ConnectionType");
    if (type == "initiator") {
      if (nolog) ini.reset(new FIX::SocketInitiator(app, store, settings));
      else ini.reset(new FIX::SocketInitiator(app, store, settings, log));
      ini->start();
    } else {
      if (nolog) acc.reset(new FIX::SocketAcceptor(app, store, settings));
      else acc.reset(new FIX::SocketAcceptor(app, store, settings, log));
      acc->start();
    }
    say("READY type=" + type);
    std::string line;
    int order = 0;
    while (std::getline(std::cin, line)) {
      FIX::Session* s = FIX::Session::lookupSession(app.session);
      if (line.rfind("order ", 0) == 0) {
        FIX::Message nos;
        nos.getHeader().setField(FIX::MsgType("D"));
        nos.setField(11, line.substr(6));
        if (app.session.getBeginString().getValue() == "FIX.4.2") nos.setField(21, "1");
        nos.setField(55, "IBM");
        nos.setField(54, "1");
        nos.setField(60, FIX::UtcTimeStampField(60).getString());
        nos.setField(38, std::to_string(100 + ++order));
        nos.setField(40, "2");
        nos.setField(44, "10.5");
        FIX::Session::sendToTarget(nos, app.session);
        say("ORDER_SENT clordid=" + line.substr(6));
      } else if (line == "logout") {
        if (s) s->logout("peer logout");
        say("OK cmd=logout");
      } else if (line == "logon") {
        if (s) s->logon();
        say("OK cmd=logon");
      } else if (line == "seqnums") {
        if (s) say("SEQNUMS sender=" + std::to_string(s->getExpectedSenderNum()) +
                   " target=" + std::to_string(s->getExpectedTargetNum()));
      } else if (line == "quiet") {
        quiet = true;
        say("OK cmd=quiet");
      } else if (line.rfind("bench ", 0) == 0) {
        const std::string rest = line.substr(6);
        const size_t space = rest.find(' ');
        const int n = std::stoi(rest.substr(0, space));
        const std::string samples_path = space == std::string::npos ? "" : rest.substr(space + 1);
        std::vector<double> us;
        us.reserve(n);
        bool ok = true;
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n && ok; ++i) {
          const long before = fills_now();
          const auto a = std::chrono::steady_clock::now();
          send_order(app.session, "B" + std::to_string(++order), 100);
          ok = wait_fills(before + 1, 10);
          us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!ok) { say("BENCH error=timeout"); continue; }
        if (!samples_path.empty()) {
          std::ofstream out(samples_path);
          for (double v : us) out << static_cast<long long>(v * 1000.0) << '\n';
          if (!out) { say("BENCH error=samples_file"); continue; }
        }
        std::sort(us.begin(), us.end());
        auto pct = [&](double p) { return us[std::min(us.size() - 1, (size_t)(p * us.size()))]; };
        say("BENCH n=" + std::to_string(n) + " p50_us=" + std::to_string(pct(0.5)) + " p99_us=" +
            std::to_string(pct(0.99)) + " max_us=" + std::to_string(us.back()) + " msgs_per_s=" +
            std::to_string(n / secs));
      } else if (line.rfind("burst ", 0) == 0) {
        const int n = std::stoi(line.substr(6));
        const long before = fills_now();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) send_order(app.session, "U" + std::to_string(++order), 100);
        const bool ok = wait_fills(before + n, 60);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        say(ok ? "BURST n=" + std::to_string(n) + " msgs_per_s=" + std::to_string(n / secs) : "BURST error=timeout");
      } else if (line == "quit") {
        break;
      }
    }
    if (ini) ini->stop();
    if (acc) acc->stop();
    say("STOPPED");
  } catch (std::exception& e) {
    std::cerr << "qfpeer error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
