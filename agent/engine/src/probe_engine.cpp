// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/probe_engine.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

namespace hubprobe {

namespace {
constexpr size_t kRxBatch = 64;
constexpr uint32_t kRxBufferSize = 9216;
}  // namespace

ProbeEngine::ProbeEngine(std::shared_ptr<dp::Dataplane> dataplane)
    : dataplane_(std::move(dataplane)),
      rx_buffers_(kRxBatch, std::vector<uint8_t>(kRxBufferSize)),
      rx_(kRxBatch),
      tx_stamps_(256) {
  for (size_t i = 0; i < kRxBatch; ++i) {
    rx_[i].data = rx_buffers_[i].data();
    rx_[i].capacity = kRxBufferSize;
  }
}

ProbeEngine::~ProbeEngine() = default;

dp::PortOptions ProbeEngine::port_options(const SessionSpec& spec, const SocketAddress& local) {
  dp::PortOptions options;
  options.local = local.valid() ? local : SocketAddress::any(spec.target.family(), 0);
  options.device = spec.device;
  options.fwmark = spec.fwmark;
  options.tx_timestamps = true;
  return options;
}

std::vector<SocketAddress> ProbeEngine::locals_of(const SessionSpec& spec) {
  if (spec.source_ports.empty()) return {spec.source};
  std::vector<SocketAddress> locals;
  for (const uint16_t source_port : spec.source_ports) {
    SocketAddress local = spec.source.valid() ? spec.source : SocketAddress::any(spec.target.family(), 0);
    local.set_port(source_port);
    locals.push_back(local);
  }
  return locals;
}

ProbeEngine::PortKey ProbeEngine::key_of(const SessionSpec& spec, const SocketAddress& local) {
  return PortKey{spec.target.family(), spec.device, spec.fwmark, local.valid() ? local.to_string() : ""};
}

bool ProbeEngine::holds_port_number(const SocketAddress& local) const {
  if (!local.valid() || local.port() == 0) return false;
  return std::any_of(ports_.begin(), ports_.end(), [&](const auto& entry) {
    const SocketAddress bound = entry.second.port->local_address();
    return bound.family() == local.family() && bound.port() == local.port();
  });
}

Result<void> ProbeEngine::check_ports(const std::vector<SessionSpec>& specs) const {
  std::map<PortKey, std::unique_ptr<dp::Port>> opened;  // held until the end
  for (const SessionSpec& spec : specs) {
    for (const SocketAddress& local : locals_of(spec)) {
      const PortKey key = key_of(spec, local);
      if (ports_.count(key) != 0 || opened.count(key) != 0 || holds_port_number(local)) continue;
      auto port = dataplane_->open_port(port_options(spec, local));
      if (!port) return make_error("session " + spec.id + ": " + port.error().message, port.error().code);
      opened.emplace(key, std::move(port.value()));
    }
  }
  return {};
}

Result<ProbeEngine::PortKey> ProbeEngine::acquire_port(const SessionSpec& spec, const SocketAddress& local) {
  const PortKey key = key_of(spec, local);
  auto port_it = ports_.find(key);
  if (port_it == ports_.end()) {
    auto port = dataplane_->open_port(port_options(spec, local));
    if (!port) return make_error("session " + spec.id + ": " + port.error().message, port.error().code);
    port_it = ports_.emplace(key, PortState{}).first;
    port_it->second.port = std::move(port.value());
    port_it->second.capabilities = port_it->second.port->capabilities();
  }
  ++port_it->second.users;
  return key;
}

Result<std::vector<ProbeEngine::PortKey>> ProbeEngine::acquire_ports(const SessionSpec& spec) {
  std::vector<PortKey> keys;
  for (const SocketAddress& local : locals_of(spec)) {
    auto key = acquire_port(spec, local);
    if (!key) {
      for (const PortKey& acquired : keys) release_port(acquired, 0, 0);
      return key.error();
    }
    keys.push_back(*key);
  }
  return keys;
}

void ProbeEngine::release_port(const PortKey& key, uint16_t ssid, uint64_t serial) {
  auto port_it = ports_.find(key);
  if (port_it == ports_.end()) return;
  PortState& port = port_it->second;
  if (auto owner = port.session_by_ssid.find(ssid); owner != port.session_by_ssid.end() && owner->second == serial) {
    port.session_by_ssid.erase(owner);
  }
  // Its entries in session_by_tx_id stay: they name a serial no live session has, and go when their stamp
  // comes (or with the bound in run_tick()).
  if (--port.users == 0) ports_.erase(port_it);
}

Result<void> ProbeEngine::add_session(const SessionSpec& spec, uint64_t phase_seed, MonoNs now) {
  if (sessions_.count(spec.id)) return make_error("session " + spec.id + " exists already");
  if (!spec.target.valid()) return make_error("session " + spec.id + ": no target address");

  auto acquired = acquire_ports(spec);
  if (!acquired) return acquired.error();
  const std::vector<PortKey>& keys = *acquired;

  // A random non-zero SSID, unique on every port of the session: replies are demultiplexed by it.
  std::mt19937_64 random(phase_seed ^ static_cast<uint64_t>(now));
  uint16_t ssid = 0;
  const auto taken = [&](uint16_t candidate) {
    return std::any_of(keys.begin(), keys.end(),
                       [&](const PortKey& key) { return ports_.at(key).session_by_ssid.count(candidate) != 0; });
  };
  do {
    ssid = static_cast<uint16_t>(random() % 65535 + 1);
  } while (taken(ssid));

  stamp::SenderOptions options;
  options.mode = spec.mode;
  options.key = spec.key;
  options.format = spec.format;
  options.ssid = ssid;
  options.packet_size = spec.packet_size;
  options.timeout_ns = spec.timeout_ns;
  options.history = stamp::history_for(spec.interval_ns, spec.timeout_ns);
  // No TX stamps will come: T1 is the send time, and a reply need not wait for a stamp.
  if (!has_tx_timestamps(keys)) options.tx_timestamp_grace_ns = 0;

  Session session;
  session.spec = spec;
  session.port_keys = keys;
  session.sender = std::make_unique<stamp::SessionSender>(options, spec.target);
  session.buffer.resize(session.sender->packet_size());
  // Spread first probes over the interval so peers are not probed in lock-step.
  session.next_send =
      now + static_cast<int64_t>(phase_seed % static_cast<uint64_t>(std::max<int64_t>(spec.interval_ns, 1)));
  Session& added = sessions_.emplace(spec.id, std::move(session)).first->second;
  enroll(added);
  for (const PortKey& key : keys) ports_.at(key).session_by_ssid[ssid] = added.serial;
  return {};
}

void ProbeEngine::enroll(Session& session) {
  session.serial = next_serial_++;
  session.armed = kNotArmed;
  session.touched = false;
  by_serial_[session.serial] = &session;
  ++intervals_[session.spec.interval_ns];
  if (session.sending()) send_timers_.push({session.next_send, session.serial});
  arm(session);
}

void ProbeEngine::unenroll(const Session& session) {
  by_serial_.erase(session.serial);
  if (auto it = intervals_.find(session.spec.interval_ns); it != intervals_.end() && --it->second == 0) {
    intervals_.erase(it);
  }
}

ProbeEngine::Session* ProbeEngine::live(uint64_t serial) {
  auto it = by_serial_.find(serial);
  return it == by_serial_.end() ? nullptr : it->second;
}

void ProbeEngine::arm(Session& session) {
  const MonoNs deadline = session.sender->next_deadline();
  if (deadline >= session.armed) return;
  session.armed = deadline;
  deadline_timers_.push({deadline, session.serial});
}

void ProbeEngine::touch(Session& session) {
  if (session.touched) return;
  session.touched = true;
  touched_.push_back(session.serial);
}

ProbeEngine::Session* ProbeEngine::send_timer_owner(const Timer& timer) {
  Session* session = live(timer.serial);
  return session != nullptr && session->sending() && session->next_send == timer.at ? session : nullptr;
}

ProbeEngine::Session* ProbeEngine::deadline_timer_owner(const Timer& timer) {
  Session* session = live(timer.serial);
  return session != nullptr && session->armed == timer.at ? session : nullptr;
}

void ProbeEngine::prune() {
  while (!send_timers_.empty() && send_timer_owner(send_timers_.top()) == nullptr) send_timers_.pop();
  while (!deadline_timers_.empty() && deadline_timer_owner(deadline_timers_.top()) == nullptr) deadline_timers_.pop();
}

int64_t ProbeEngine::shortest_interval() const { return intervals_.empty() ? 0 : intervals_.begin()->first; }

double ProbeEngine::probe_rate() const {
  double rate = 0;
  for (const auto& [interval, sessions] : intervals_) rate += static_cast<double>(sessions) * 1e9 / interval;
  return rate;
}

bool ProbeEngine::has_tx_timestamps(const std::vector<PortKey>& keys) const {
  return std::any_of(keys.begin(), keys.end(),
                     [&](const PortKey& key) { return ports_.at(key).capabilities.tx_timestamps(); });
}

void ProbeEngine::remove_session(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  for (const PortKey& key : it->second.port_keys) {
    release_port(key, it->second.sender->options().ssid, it->second.serial);
  }
  unenroll(it->second);
  sessions_.erase(it);
  prune();
}

std::optional<ProbeEngine::Session> ProbeEngine::detach(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  unenroll(it->second);
  Session session = std::move(it->second);
  sessions_.erase(it);
  prune();
  for (const PortKey& key : session.port_keys) release_port(key, session.sender->options().ssid, session.serial);
  return session;
}

Result<void> ProbeEngine::attach(Session session) {
  auto acquired = acquire_ports(session.spec);
  if (!acquired) return acquired.error();
  // The SSID was free on these ports when the session left, and only sessions added since (and removed
  // again) could have taken it.
  const uint16_t ssid = session.sender->options().ssid;
  session.port_keys = std::move(*acquired);
  session.next_port %= session.port_keys.size();
  const std::string id = session.spec.id;
  Session& back = sessions_.emplace(id, std::move(session)).first->second;
  enroll(back);
  for (const PortKey& key : back.port_keys) ports_.at(key).session_by_ssid[ssid] = back.serial;
  return {};
}

Error ProbeEngine::put_back(std::vector<Session> parked, Error cause) {
  for (Session& session : parked) {
    const std::string id = session.spec.id;
    if (auto r = attach(std::move(session)); !r) {
      cause.message += "; session " + id + " could not be put back: " + r.error().message;
    }
  }
  return cause;
}

Result<void> ProbeEngine::replace_sessions(const std::vector<std::string>& remove, const std::vector<NewSession>& add,
                                           MonoNs now) {
  std::vector<Session> parked;
  for (const std::string& id : remove) {
    if (auto session = detach(id)) parked.push_back(std::move(*session));
  }
  std::vector<std::string> added;
  for (const NewSession& next : add) {
    if (auto r = add_session(next.spec, next.phase_seed, now); !r) {
      for (const std::string& id : added) remove_session(id);
      return put_back(std::move(parked), r.error());
    }
    added.push_back(next.spec.id);
  }
  return {};
}

const SessionSpec* ProbeEngine::spec(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second.spec;
}

const stamp::SenderCounters* ProbeEngine::sender_counters(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second.sender->counters();
}

const stamp::SessionSender* ProbeEngine::sender(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.sender.get();
}

void ProbeEngine::stop_sending(const std::string& id) {
  if (auto it = sessions_.find(id); it != sessions_.end()) it->second.stopped = true;
  prune();
}

bool ProbeEngine::finished(const std::string& id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() || (!it->second.sending() && it->second.sender->in_flight() == 0);
}

MonoNs ProbeEngine::next_due() const {
  return send_timers_.empty() ? std::numeric_limits<MonoNs>::max() : send_timers_.top().at;
}

MonoNs ProbeEngine::next_deadline() const {
  const MonoNs sender = deadline_timers_.empty() ? std::numeric_limits<MonoNs>::max() : deadline_timers_.top().at;
  return std::min(next_due(), sender);
}

dp::WaitKind ProbeEngine::wait_kind() const {
  std::vector<dp::WaitKind> kinds;
  for (const auto& [key, port] : ports_) kinds.push_back(port.capabilities.wait);
  return loop_kind(kinds);
}

std::vector<int> ProbeEngine::poll_fds() const {
  std::vector<int> fds;
  for (const auto& [key, port] : ports_) fds.push_back(port.port->poll_fd());
  return fds;
}

ProbeEngine::Session* ProbeEngine::session_for_reply(PortState& port, const dp::RxPacket& packet) {
  // Try the session owning the SSID where an unauthenticated or an authenticated reply holds it, then
  // fall back to the source address (reflectors without RFC 8972 send SSID 0).
  const std::span<const uint8_t> data(packet.data, packet.length);
  auto by_ssid = [&](stamp::Mode mode) -> Session* {
    const std::optional<uint16_t> ssid = stamp::read_ssid(data, mode);
    if (!ssid || *ssid == 0) return nullptr;
    auto it = port.session_by_ssid.find(*ssid);
    if (it == port.session_by_ssid.end()) return nullptr;
    Session* session = live(it->second);
    if (session == nullptr || session->spec.mode != mode || !(session->spec.target == packet.source)) return nullptr;
    return session;
  };
  if (Session* s = by_ssid(stamp::Mode::kUnauthenticated)) return s;
  if (Session* s = by_ssid(stamp::Mode::kAuthenticated)) return s;
  for (auto& [ssid, serial] : port.session_by_ssid) {
    Session* session = live(serial);
    if (session != nullptr && session->spec.target == packet.source) return session;
  }
  return nullptr;
}

size_t ProbeEngine::drain_tx_stamps(PortState& port) {
  const dp::ClockDomain& clock = *port.capabilities.clock;
  size_t matched = 0;
  while (true) {
    const size_t n = port.port->drain_tx_timestamps(tx_stamps_);
    for (size_t i = 0; i < n; ++i) {
      auto owner = port.session_by_tx_id.find(tx_stamps_[i].tx_id);
      if (owner == port.session_by_tx_id.end()) continue;
      Session* session = live(owner->second);
      port.session_by_tx_id.erase(owner);
      tx_stamps_[i].ts = dp::to_wall(clock, tx_stamps_[i].ts);
      if (session != nullptr) {
        session->sender->on_tx_timestamp(tx_stamps_[i]);
        touch(*session);
      }
      ++matched;
    }
    if (n < tx_stamps_.size()) break;
  }
  return matched;
}

size_t ProbeEngine::collect(PortState& port, const Now& now) {
  // TX timestamps first, so replies find their kernel T1. Every stamp of the port becomes wall time
  // (its clock domain's to_wall(); the identity for realtime ports) before the sender sees it.
  size_t handled = port.capabilities.tx_timestamps() ? drain_tx_stamps(port) : 0;
  while (true) {
    auto received = port.port->receive(rx_);
    if (!received || *received == 0) break;
    handled += *received;
    for (size_t i = 0; i < *received; ++i) {
      rx_[i].rx = dp::to_wall(*port.capabilities.clock, rx_[i].rx);
      Session* session = session_for_reply(port, rx_[i]);
      if (session == nullptr) {
        ++counters_.unmatched_replies;
        continue;
      }
      session->sender->on_receive(rx_[i], now);
      touch(*session);
    }
    if (*received < rx_.size()) break;
  }
  return handled;
}

StepResult ProbeEngine::run_tick(const Now& now, const ClockState& clock, ProbeListener& listener) {
  ++counters_.ticks;
  StepResult result;
  for (auto& [key, port] : ports_) result.work += collect(port, now);
  settle(now, listener);
  result.work += send_due(now, clock, listener);
  // TX stamps that never came (a dropped error-queue message) must not pile up.
  for (auto& [key, port] : ports_) {
    if (port.session_by_tx_id.size() > 4 * sessions_.size() + 1024) port.session_by_tx_id.clear();
  }
  prune();
  result.next_deadline = next_deadline();
  return result;
}

void ProbeEngine::settle(const Now& now, ProbeListener& listener) {
  while (!deadline_timers_.empty() && deadline_timers_.top().at <= now.mono) {
    const Timer timer = deadline_timers_.top();
    deadline_timers_.pop();
    Session* session = deadline_timer_owner(timer);
    if (session == nullptr) continue;
    session->armed = kNotArmed;
    touch(*session);
  }
  for (const uint64_t serial : touched_) {
    Session* session = live(serial);
    if (session == nullptr) continue;
    session->touched = false;
    session->sender->advance(now.mono);
    events_.clear();
    session->sender->take_events(events_);
    const std::string id = session->spec.id;  // the listener may remove the session
    for (const auto& event : events_) listener.on_probe_event(id, event, now);
    if ((session = live(serial)) != nullptr) arm(*session);
  }
  touched_.clear();
}

bool ProbeEngine::queue_probe(Session& session, const Now& now, const ClockState& clock, ProbeListener& listener) {
  auto probe = session.sender->build_probe(session.buffer, now, clock);
  if (!probe) {
    listener.on_build_failed(session.spec.id, probe.error());
    return false;
  }
  probe->tos = session.spec.dscp >= 0 ? session.spec.dscp << 2 : -1;
  PortState& port = ports_.at(session.port_keys[session.next_port]);
  port.batch.push_back(*probe);
  port.owners.push_back(&session);
  session.next_send += session.spec.interval_ns;
  // After a stall keep the rhythm rather than bursting to catch up.
  if (session.next_send <= now.mono) session.next_send = now.mono + session.spec.interval_ns;
  return true;
}

size_t ProbeEngine::send_due(const Now& now, const ClockState& clock, ProbeListener& listener) {
  // One batch per port: the sessions due (the top of send_timers_) put their probe in the batch of the
  // port it leaves from (a session with a source-port set uses its ports in turn).
  while (!send_timers_.empty() && send_timers_.top().at <= now.mono) {
    const Timer timer = send_timers_.top();
    send_timers_.pop();
    Session* session = send_timer_owner(timer);
    if (session == nullptr) continue;
    if (!queue_probe(*session, now, clock, listener)) {
      retry_.push_back(timer);  // due again at the next tick
      continue;
    }
    if (session->sending()) send_timers_.push({session->next_send, timer.serial});
  }
  for (const Timer& timer : retry_) send_timers_.push(timer);
  retry_.clear();
  size_t left = 0;
  for (auto& [key, port] : ports_) {
    if (port.batch.empty()) continue;
    ++counters_.send_batches;
    auto sent = port.port->send(port.batch);
    for (size_t i = 0; i < port.batch.size(); ++i) {
      Session& session = *port.owners[i];
      dp::TxPacket& packet = port.batch[i];
      const uint32_t seq = session.sender->next_seq();
      session.next_port = (session.next_port + 1) % session.port_keys.size();
      if (sent && packet.error == 0) {
        packet.sent_at = dp::to_wall(*port.capabilities.clock, packet.sent_at);
        session.sender->on_sent(packet);
        if (port.capabilities.tx_timestamps()) port.session_by_tx_id[packet.tx_id] = session.serial;
        arm(session);
        listener.on_probe_sent(session.spec.id, seq, now);
        ++left;
      } else {
        session.sender->on_send_failed();
        ++counters_.send_errors;
        arm(session);
        listener.on_send_failed(session.spec.id, seq,
                                sent ? make_error(std::strerror(packet.error), packet.error) : sent.error());
      }
    }
    port.batch.clear();
    port.owners.clear();
  }
  return left;
}

dp::PortCounters ProbeEngine::port_counters() const {
  dp::PortCounters sum;
  for (const auto& [key, port] : ports_) {
    const auto& c = port.port->counters();
    sum.rx_packets += c.rx_packets;
    sum.rx_truncated += c.rx_truncated;
    sum.rx_errors += c.rx_errors;
    sum.tx_packets += c.tx_packets;
    sum.tx_errors += c.tx_errors;
    sum.tx_timestamps += c.tx_timestamps;
    sum.rx_without_timestamp += c.rx_without_timestamp;
  }
  return sum;
}

}  // namespace hubprobe
