// SPDX-License-Identifier: Apache-2.0
#include "hubprobe/scripted_port.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hubprobe::dp {

void ScriptedPort::deliver(ScriptedPacket packet) {
  const int64_t arrival = packet.arrival;
  queue_.emplace(arrival, std::move(packet));
}

std::vector<SentPacket> ScriptedPort::take_sent() {
  std::vector<SentPacket> out;
  out.swap(sent_);
  return out;
}

Result<size_t> ScriptedPort::send(std::span<TxPacket> batch) {
  size_t sent = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    TxPacket& packet = batch[i];
    if (send_capacity_ == 0) {
      for (size_t j = i; j < batch.size(); ++j) batch[j].error = EAGAIN;
      counters_.tx_errors += batch.size() - i;
      return sent;
    }
    if (!packet.destination.valid()) {
      packet.error = EDESTADDRREQ;
      ++counters_.tx_errors;
      continue;
    }
    --send_capacity_;
    packet.error = 0;
    packet.tx_id = next_tx_id_++;
    packet.sent_at = {clock_.now(), TimestampSource::kUser};
    sent_.push_back({std::vector<uint8_t>(packet.data, packet.data + packet.length), packet.destination, packet.source,
                     packet.tos, packet.tx_id, packet.sent_at.ns});
    ++counters_.tx_packets;
    ++sent;
  }
  return sent;
}

void ScriptedPort::receive_one(ScriptedPacket& scripted, RxPacket& packet) {
  const auto length = static_cast<uint32_t>(scripted.data.size());
  packet.length = std::min(length, packet.capacity);
  packet.truncated = length > packet.capacity;
  if (packet.length > 0) std::memcpy(packet.data, scripted.data.data(), packet.length);
  packet.source = scripted.source;
  packet.destination = scripted.destination.valid() ? scripted.destination : local_;
  packet.ifindex = 0;
  packet.ttl = scripted.ttl;
  packet.tos = scripted.tos;
  packet.rx = scripted.stamped ? Timestamp{scripted.arrival, TimestampSource::kHardware} : Timestamp{};
  ++counters_.rx_packets;
  if (packet.truncated) ++counters_.rx_truncated;
  if (!packet.rx.valid()) ++counters_.rx_without_timestamp;
}

Result<size_t> ScriptedPort::receive(std::span<RxPacket> batch) {
  size_t received = 0;
  while (received < batch.size() && !queue_.empty() && queue_.begin()->first <= clock_.now()) {
    receive_one(queue_.begin()->second, batch[received++]);
    queue_.erase(queue_.begin());
  }
  return received;
}

size_t ScriptedPort::drain_tx_timestamps(std::span<TxTimestamp> /*out*/) { return 0; }

PortCapabilities ScriptedPort::capabilities() const {
  PortCapabilities capabilities;
  capabilities.rx_source = TimestampSource::kHardware;
  capabilities.tx_source = TimestampSource::kNone;
  capabilities.t3_source = TimestampSource::kUser;
  capabilities.wait = WaitKind::kBusyPoll;
  capabilities.clock = &clock_;
  return capabilities;
}

}  // namespace hubprobe::dp
