// SPDX-License-Identifier: Apache-2.0
// The agent's sender side: many probe sessions (one per (peer, path)) over a few shared ports.
// It runs on a tick: every tick it sends the probes that are due, in one batch per port, and collects
// the replies and TX timestamps that arrived since the last tick. Kernel timestamps make the tick
// invisible in the measurement, and batching keeps the system-call rate low (docs/benchmarks.md: 100
// peers at 10/s on a small share of one core). A tick touches only the sessions with work: those due to
// send and those whose timeout comes are found in two timer heaps, those with a reply or TX stamp by the
// port's lookup, so a tick costs what it does, not the number of sessions. Due times and timeouts run on
// the monotonic clock; the wall clock is only what goes into the probes. Not thread-safe: the agent
// serialises access.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "hubprobe/dataplane.h"
#include "hubprobe/engine_loop.h"
#include "hubprobe/session_sender.h"

namespace hubprobe {

/// Everything that defines a probe session. Two equal specs are the same session (reload keeps it).
struct SessionSpec {
  std::string id;  ///< unique: "PEER/PATH" in the agent
  SocketAddress target;
  stamp::Mode mode = stamp::Mode::kUnauthenticated;
  std::shared_ptr<const stamp::HmacKey> key;
  uint32_t packet_size = 0;  ///< 0 = base length
  int dscp = -1;
  int64_t interval_ns = 100'000'000;
  int64_t timeout_ns = 1'000'000'000;
  TimestampFormat format = TimestampFormat::kNtp;
  // How the probe is pinned to a path.
  std::string device;
  uint32_t fwmark = 0;
  SocketAddress source;  ///< local address and port; unset = any
  /// UDP source ports used in turn, one probe each (spreads probes over ECMP paths); each is its own
  /// socket. Empty = the port of `source` (ephemeral when 0).
  std::vector<uint16_t> source_ports;
  /// Probes to send (failed sends included), then none; the ones in flight still end as events.
  /// 0 = no limit.
  uint64_t count = 0;
  // Whether a reload keeps a session is decided on the configuration it is made from (same_session() in
  // hubprobe/config.h), the one list of the fields that make "the same session".
};

/// Receives what the engine learns. Called on the engine's thread, inside run_tick().
class ProbeListener {
 public:
  virtual ~ProbeListener() = default;
  /// Probe `seq` left in the tick at `now`.
  virtual void on_probe_sent(const std::string& session_id, uint32_t seq, const Now& now) = 0;
  /// What became of a probe, learnt in the tick at `now`.
  virtual void on_probe_event(const std::string& session_id, const stamp::ProbeEvent& event, const Now& now) = 0;
  /// A probe that was built but did not leave (`error` says why). Its sequence number is used up.
  virtual void on_send_failed(const std::string& /*session_id*/, uint32_t /*seq*/, const Error& /*error*/) {}
  /// A probe that could not be built (e.g. the HMAC failed). The session tries again at the next tick.
  virtual void on_build_failed(const std::string& /*session_id*/, const Error& /*error*/) {}
};

struct EngineCounters {
  uint64_t ticks = 0;
  uint64_t send_batches = 0;
  uint64_t unmatched_replies = 0;  ///< from an address/SSID no session owns
  uint64_t send_errors = 0;
};

class ProbeEngine {
 public:
  explicit ProbeEngine(std::shared_ptr<dp::Dataplane> dataplane);
  ~ProbeEngine();

  /// A session for replace_sessions().
  struct NewSession {
    SessionSpec spec;
    uint64_t phase_seed = 0;
  };

  /// Adds a session; opens (or shares) the ports it needs. The first probe goes out at a phase within the
  /// interval derived from `phase_seed`, so sessions are not probed in lock-step.
  Result<void> add_session(const SessionSpec& spec, uint64_t phase_seed, MonoNs now);
  void remove_session(const std::string& id);
  /// Removes the sessions `remove` and adds `add` as one change (a reload). The removed sessions' ports
  /// close first, so a new session may take a fixed source port an old one held. When a session cannot be
  /// added, the added ones are removed and the removed ones are put back as they were (sender, sequence
  /// numbers, counters, SSID; TX timestamps of probes in flight are not matched any more), and the error is
  /// returned. Putting back reopens the old ports; a session whose port another process took meanwhile
  /// stays out, and the error names it.
  Result<void> replace_sessions(const std::vector<std::string>& remove, const std::vector<NewSession>& add, MonoNs now);
  /// Opens every port the sessions `specs` would need (each source port of a set, their device, fwmark and
  /// source address) and closes them again, so a reload can refuse before it changes anything. Ports the
  /// engine has open are shared, so they are not opened; nor are fixed ports the engine holds under other
  /// options (the session holding one may be about to leave: replace_sessions() finds out). The ports
  /// stay open until every spec is checked, so new sessions that would clash with each other fail too.
  Result<void> check_ports(const std::vector<SessionSpec>& specs) const;
  bool has_session(const std::string& id) const { return sessions_.count(id) != 0; }
  const SessionSpec* spec(const std::string& id) const;
  const stamp::SenderCounters* sender_counters(const std::string& id) const;
  /// The session's sender (packet size, counters, probes in flight); null for an unknown id.
  const stamp::SessionSender* sender(const std::string& id) const;
  size_t session_count() const { return sessions_.size(); }
  /// The session sends no more probes; those in flight still end as events (reply or loss).
  void stop_sending(const std::string& id);
  /// True when the session sends no more (its count reached, or stopped) and has no probe in flight;
  /// also for an unknown id.
  bool finished(const std::string& id) const;

  /// One tick at `now`, the engine's step that any loop can drive (an EngineLoop through a LoopStep that
  /// supplies `clock` and `listener`): collect TX stamps and replies, expire timeouts, send what is due.
  /// Its work: datagrams received, TX stamps matched and probes sent; its deadline: the next probe due or
  /// probe timing out (a reply's wait for its TX stamp included).
  StepResult run_tick(const Now& now, const ClockState& clock, ProbeListener& listener);
  /// When the next probe is due (monotonic, for sleeping); far future when no session sends.
  MonoNs next_due() const;
  /// The earliest of next_due() and every session's next timeout (SessionSender::next_deadline()); it may
  /// be early (a deadline that moved later since), never late.
  MonoNs next_deadline() const;
  /// The shortest probe interval of the sessions; 0 without sessions.
  int64_t shortest_interval() const;
  /// Probes per second of all sessions together (each at its interval).
  double probe_rate() const;
  /// The ports' descriptors, to sleep on between ticks (dp::Port::poll_fd: -1 for a busy-polled port).
  std::vector<int> poll_fds() const;
  /// The loop kind of the engine's ports: kBusyPoll when any is busy-polled; kPollFd without ports.
  dp::WaitKind wait_kind() const;

  const EngineCounters& counters() const { return counters_; }
  /// Summed port counters, for metrics.
  dp::PortCounters port_counters() const;

 private:
  struct PortKey {
    int family = 0;
    std::string device;
    uint32_t fwmark = 0;
    std::string source;  ///< SocketAddress::to_string of the bound source, "" = any
    auto operator<=>(const PortKey&) const = default;
  };
  struct Session;
  static constexpr MonoNs kNotArmed = std::numeric_limits<MonoNs>::max();
  /// An entry of a timer heap: when, and which session (by serial; a removed session's entries are
  /// skipped when they come up).
  struct Timer {
    MonoNs at = 0;
    uint64_t serial = 0;
    bool operator>(const Timer& other) const { return at > other.at; }
  };
  using TimerHeap = std::priority_queue<Timer, std::vector<Timer>, std::greater<>>;
  struct PortState {
    std::unique_ptr<dp::Port> port;
    dp::PortCapabilities capabilities;                        ///< the port's, read once it is open
    std::unordered_map<uint16_t, uint64_t> session_by_ssid;   ///< serials
    std::unordered_map<uint32_t, uint64_t> session_by_tx_id;  ///< serials
    size_t users = 0;
    // Scratch of one tick: the probes due on this port and the sessions they belong to.
    std::vector<dp::TxPacket> batch;
    std::vector<Session*> owners;
  };
  struct Session {
    SessionSpec spec;
    std::vector<PortKey> port_keys;  ///< one, or one per source port (used in turn)
    size_t next_port = 0;
    std::unique_ptr<stamp::SessionSender> sender;
    MonoNs next_send = 0;
    bool stopped = false;
    std::vector<uint8_t> buffer;
    uint64_t serial = 0;       ///< names the session in the timer heaps (ids may come back)
    MonoNs armed = kNotArmed;  ///< the sender timer in deadline_timers_ that counts; kNotArmed: none
    bool touched = false;      ///< in touched_ this tick

    bool sending() const { return !stopped && (spec.count == 0 || sender->next_seq() < spec.count); }
  };

  /// Collects a port's TX stamps and replies; returns how many it handled.
  size_t collect(PortState& port, const Now& now);
  size_t drain_tx_stamps(PortState& port);
  /// Whether any port of the session delivers TX timestamps (else its sender waits no grace for them).
  bool has_tx_timestamps(const std::vector<PortKey>& keys) const;
  /// Sends the probes that are due; returns how many left.
  size_t send_due(const Now& now, const ClockState& clock, ProbeListener& listener);
  /// Puts the session's due probes into its port's batch (false: the probe could not be built).
  bool queue_probe(Session& session, const Now& now, const ClockState& clock, ProbeListener& listener);
  /// Advances the sessions whose timer came and the ones touched this tick, and hands their events on.
  void settle(const Now& now, ProbeListener& listener);
  /// Marks a session that received something (a reply, a TX stamp) for settle().
  void touch(Session& session);
  /// Puts the session's sender deadline in the heap when it is earlier than the one there.
  void arm(Session& session);
  /// Gives a session that joins the engine (added, or put back) its serial and its timers.
  void enroll(Session& session);
  /// Takes a leaving session out of the timer heaps' reach and the interval count.
  void unenroll(const Session& session);
  Session* live(uint64_t serial);
  /// The session a timer entry is for, while the entry counts; null for a stale one (the session left, or
  /// stopped sending, or its next send / armed deadline moved: a later entry counts).
  Session* send_timer_owner(const Timer& timer);
  Session* deadline_timer_owner(const Timer& timer);
  /// Pops the heaps' entries of sessions that left or stopped sending, so next_due() is not early.
  void prune();
  Session* session_for_reply(PortState& port, const dp::RxPacket& packet);
  /// The local addresses of a session: its source as given, or one per source port.
  static std::vector<SocketAddress> locals_of(const SessionSpec& spec);
  static PortKey key_of(const SessionSpec& spec, const SocketAddress& local);
  /// A fixed port (not 0) that one of the engine's ports of the same family is bound to.
  bool holds_port_number(const SocketAddress& local) const;
  Result<PortKey> acquire_port(const SessionSpec& spec, const SocketAddress& local);
  /// acquire_port() for every local address of `spec`: all of them, or none (the error).
  Result<std::vector<PortKey>> acquire_ports(const SessionSpec& spec);
  static dp::PortOptions port_options(const SessionSpec& spec, const SocketAddress& local);
  /// Drops a user of the port: the session `serial` (0: none registered yet) and its SSID there.
  void release_port(const PortKey& key, uint16_t ssid, uint64_t serial);
  /// Takes a session out (its ports released) without ending it, for replace_sessions().
  std::optional<Session> detach(const std::string& id);
  /// Puts a detached session back: its ports reopened (or shared), its SSID registered on them.
  Result<void> attach(Session session);
  /// Attaches every parked session; `cause` comes back with the ones that could not be put back named.
  Error put_back(std::vector<Session> parked, Error cause);

  std::shared_ptr<dp::Dataplane> dataplane_;
  std::map<PortKey, PortState> ports_;
  std::map<std::string, Session> sessions_;  ///< map nodes stay put: the pointers below stay valid
  std::unordered_map<uint64_t, Session*> by_serial_;
  uint64_t next_serial_ = 1;
  TimerHeap send_timers_;                ///< one entry per sending session: its next_send
  TimerHeap deadline_timers_;            ///< a session's sender deadline (Session::armed), and stale entries
  std::vector<uint64_t> touched_;        ///< serials of the sessions touch() marked this tick
  std::map<int64_t, size_t> intervals_;  ///< sessions per probe interval, for shortest_interval()
  std::vector<stamp::ProbeEvent> events_;
  std::vector<Timer> retry_;  ///< probes that could not be built this tick, due again next tick
  EngineCounters counters_;
  // Scratch for one tick.
  std::vector<std::vector<uint8_t>> rx_buffers_;
  std::vector<dp::RxPacket> rx_;
  std::vector<dp::TxTimestamp> tx_stamps_;
};

}  // namespace hubprobe
