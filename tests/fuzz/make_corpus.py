#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of fuzz_stamp_engines, fuzz_etcd_answer, fuzz_discovery and fuzz_prefs into
tests/fuzz/corpus/NAME/ (make_stamp_corpus.py writes fuzz_stamp_parse's).

fuzz_stamp_engines reads its input through libFuzzer's FuzzedDataProvider, which takes integers from the
end of the input and byte strings from its front: Script below writes both ends in the order the target
consumes them, so that the seeds are scripts that build probes, reflect them and deliver the replies.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
DOCS = HERE.parent.parent / "docs"


class Script:
    """An input for FuzzedDataProvider: integers from the back, byte strings from the front."""

    def __init__(self):
        self.front = bytearray()
        self.back = []  # octets in the order they are consumed

    def integer(self, lo, hi, value, width=8):
        span = hi - lo
        octets = 0
        while octets < width and (span >> (8 * octets)) > 0:
            octets += 1
        encoded = (value - lo).to_bytes(octets, "big") if octets else b""
        self.back.extend(encoded)
        return self

    def u8(self, value):
        return self.integer(0, 255, value, 1)

    def boolean(self, value):
        return self.u8(1 if value else 0)

    def raw(self, octets):
        self.front += octets
        return self

    def data(self):
        return bytes(self.front) + bytes(reversed(self.back))


# The option bits of fuzz_stamp_engines.
AUTH, STATEFUL, SHORT, GRACE, PTP, KEY_FOR = 1, 2, 4, 8, 16, 32


def engines_seed(options, extra, steps):
    s = Script().u8(options).integer(0, 65535, 7, 2).integer(0, 96, extra, 4)
    probes = replies = 0
    for step in steps:
        kind = step[0]
        s.integer(0, 9, kind, 4)
        if kind == 0:  # build a probe and send it
            s.integer(0, 5, 2, 4)
            probes += 1
        elif kind == 1:  # reflect probe step[1]
            s.integer(0, max(probes - 1, 0), step[1], 8)
            s.integer(-1, 255, 64, 4).integer(-1, 255, 0, 4).boolean(True).integer(0, 15, 1, 4)
            replies += 1
        elif kind == 4:  # deliver reply step[1] as is
            s.integer(0, max(replies - 1, 0), step[1], 8)
        elif kind == 8:  # step[1] ns pass on both clocks, then advance
            s.integer(0, 3_000_000_000, step[1], 8).boolean(True).boolean(True)
    return s.data()


def stamp_engines():
    round_trip = [(0,), (1, 0), (4, 0)]
    three = [(0,), (0,), (0,), (1, 0), (1, 2), (1, 1), (4, 1), (4, 0), (4, 0), (8, 1_500_000_000)]
    return {
        "unauth_round_trip": engines_seed(0, 0, round_trip),
        "auth_round_trip": engines_seed(AUTH, 0, round_trip),
        "unauth_stateful_padded": engines_seed(STATEFUL, 40, three),
        "auth_stateful_grace": engines_seed(AUTH | STATEFUL | GRACE, 16, three),
        "unauth_ptp_short_keyfor": engines_seed(PTP | SHORT | KEY_FOR, 0, three),
        "auth_keyfor_lost": engines_seed(AUTH | KEY_FOR, 8, [(0,), (0,), (1, 1), (8, 2_000_000_000), (4, 0)]),
    }


def etcd_answer():
    def answer(status_index, body):
        return bytes([status_index]) + body.encode()

    kvs = {"kvs": [{"key": "L2ZsZWV0L2FnZW50cy9iag==", "value": "eyJpZCI6ImJqIn0=", "lease": "7587869786596421000",
                    "mod_revision": "12", "create_revision": "3", "version": "2"}],
           "count": "1", "header": {"cluster_id": "14841639068965178418", "revision": "12"}}
    return {
        "range": answer(0, json.dumps(kvs)),
        "range_empty": answer(0, json.dumps({"header": {"revision": "5"}})),
        "grant": answer(0, json.dumps({"header": {}, "ID": "7587869786596421000", "TTL": "10"})),
        "keepalive_stream": answer(0, json.dumps({"result": {"ID": "7587869786596421000", "TTL": "10"}}) + "\n"),
        "keepalive_gone": answer(0, json.dumps({"result": {"ID": "7587869786596421000"}})),
        "not_found": answer(5, json.dumps({"error": "etcdserver: requested lease not found", "code": 5,
                                           "message": "etcdserver: requested lease not found"})),
        "stream_error": answer(0, json.dumps({"error": {"grpc_code": 5, "http_code": 404,
                                                        "message": "lease not found"}})),
        "html": answer(6, "<html><body>502 Bad Gateway</body></html>"),
    }


def discovery():
    def registration(agent_id, hub, address, port=862, **extra):
        value = {"id": agent_id, "hub": hub, "metrics": "127.0.0.1:9102", "reflector_port": port}
        if address is not None:
            value["address"] = address
        value.update(extra)
        return f"/fleet/agents/{agent_id}\x1f" + json.dumps(value)

    return {
        "two_peers": "\x1e".join([registration("bj-edge-01", "bj", "198.18.2.1"),
                                  registration("sg-edge-01", "sg", "2001:db8:5::1", 4862)]).encode(),
        "own_and_configured": "\x1e".join([registration("gz-edge-01", "gz", "198.18.0.1"),
                                           registration("sh-edge-01", "sh", "198.18.3.2"),
                                           registration("sh-edge-02", "sh", "198.18.3.2")]).encode(),
        "refused": "\x1e".join([registration("a", "x", None), registration("b", "x", "198.18.9.1", 0),
                                "/elsewhere/agents/c\x1f{}", "/fleet/agents/\x1fnot json",
                                registration("d", "y", "ff02::1")]).encode(),
        "bare_value": json.dumps({"id": "fuzz-0", "hub": "bj", "address": "198.18.7.7",
                                  "reflector_port": 862}).encode(),
    }


def prefs():
    lines = (DOCS / "scheduler-api.md").read_text().splitlines()
    start = lines.index("```json") + 1
    document = json.loads("\n".join(lines[start:lines.index("```", start)]))
    other = json.loads(json.dumps(document))
    other["agent"] = {"id": "gz-edge-02", "hub": "gz"}
    other["generation"] = 7
    other["stale"] = True
    other["destinations"][0]["preferred"] = None
    invalid = dict(document, schema="hubprobe.preferences/v0")
    return {
        "example": json.dumps(document, indent=2).encode(),
        "two_agents": (json.dumps(document) + "\x1e" + json.dumps(other)).encode(),
        "valid_invalid_broken": (json.dumps(document) + "\x1e" + json.dumps(invalid) + "\x1e{\"agent\":").encode(),
        "empty_destinations": json.dumps({"schema": "hubprobe.preferences/v1", "agent": {"id": "a", "hub": "h"},
                                          "generation": 1, "timestamp": "2026-11-25T10:31:00Z", "stale": False,
                                          "destinations": []}).encode(),
    }


def main():
    for name, seeds in {"stamp_engines": stamp_engines(), "etcd_answer": etcd_answer(),
                        "discovery": discovery(), "prefs": prefs()}.items():
        directory = CORPUS / name
        directory.mkdir(parents=True, exist_ok=True)
        for seed, data in seeds.items():
            (directory / seed).write_bytes(data)
            print(f"{name}/{seed}: {len(data)} octets")


if __name__ == "__main__":
    main()
