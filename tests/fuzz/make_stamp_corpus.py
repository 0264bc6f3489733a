#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_stamp_parse into tests/fuzz/corpus/stamp_parse/.

Packets follow RFC 8762 section 4 (with the RFC 8972 SSID); authenticated ones are signed with the
fuzz target's fixed key (octets 0x00..0x1f), so the fuzzer starts from packets that pass the HMAC.
"""
import hashlib
import hmac
import pathlib
import struct

KEY = bytes(range(32))
CORPUS = pathlib.Path(__file__).resolve().parent / "corpus" / "stamp_parse"


def sender_unauth(seq, seconds, fraction, error_estimate, ssid):
    return struct.pack("!IIIHH", seq, seconds, fraction, error_estimate, ssid) + bytes(28)


def sender_auth(seq, seconds, fraction, error_estimate, ssid):
    signed = struct.pack("!I12xIIHH68x", seq, seconds, fraction, error_estimate, ssid)
    return signed + hmac.new(KEY, signed, hashlib.sha256).digest()[:16]


def reflector_unauth(seq, t3, error_estimate, ssid, t2, sender_seq, t1, sender_error_estimate, ttl):
    return struct.pack("!IIIHHIIIIIH2xB3x", seq, *t3, error_estimate, ssid, *t2, sender_seq, *t1,
                       sender_error_estimate, ttl)


def tlv(flags, tlv_type, value, length=None):
    return struct.pack("!BBH", flags, tlv_type, len(value) if length is None else length) + value


def main():
    CORPUS.mkdir(parents=True, exist_ok=True)
    tlvs = (tlv(0x80, 1, bytes(range(12)))            # Extra Padding
            + tlv(0x80, 4, b"\x12\x34\x56\x78")        # Class of Service: flagged U by our reflector
            + tlv(0x80, 200, b"")                       # unknown type, empty
            + tlv(0x80, 1, b"\x99\x99", length=64))     # length past the end: flagged M
    seeds = {
        "sender_unauth_44.bin": sender_unauth(1, 0xEA1B2C3D, 0x80000000, 0x8587, 0xBEEF),
        "sender_unauth_ptp_44.bin": sender_unauth(2, 0x65A1B2C3, 500000000, 0xDD80, 0x1234),
        "sender_auth_112.bin": sender_auth(1, 0xEA1B2C3D, 0x80000000, 0x8587, 0xBEEF),
        "sender_unauth_tlvs.bin": sender_unauth(3, 0xEA1B2C3D, 0, 0x0001, 7) + tlvs,
        "sender_auth_tlvs.bin": sender_auth(4, 0xEA1B2C3D, 0, 0x0001, 7) + tlvs,
        "sender_unauth_zero_padding.bin": sender_unauth(5, 0xEA1B2C3D, 0, 0x0001, 0) + bytes(100),
        "reflector_unauth_44.bin": reflector_unauth(7, (0xEA1B2C40, 1), 0x0001, 0xBEEF, (0xEA1B2C3F, 0xFFFFFFFF),
                                                    1, (0xEA1B2C3D, 0x80000000), 0x8587, 63),
    }
    for name, packet in seeds.items():
        (CORPUS / name).write_bytes(packet)
        print(f"{name}: {len(packet)} octets")


if __name__ == "__main__":
    main()
