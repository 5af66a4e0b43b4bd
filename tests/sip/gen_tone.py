#!/usr/bin/env python3
"""Writes tone.alaw: one second of a 440 Hz tone, G.711 A-law, 8 kHz, no header.

SIPp's rtp_stream action loops it on every answered call (payload type 8, PCMA).
Run from anywhere: python3 tests/sip/gen_tone.py
"""
import math
import pathlib


def alaw(sample: int) -> int:
    """One 16-bit linear sample to its A-law byte (ITU-T G.711)."""
    sign = 0x80 if sample >= 0 else 0x00
    magnitude = min(abs(sample) >> 3, 0xFFF)  # 13-bit magnitude
    if magnitude < 0x20:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5  # 1..7
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def main() -> None:
    rate, freq, amplitude = 8000, 440.0, 8000
    data = bytes(
        alaw(int(amplitude * math.sin(2 * math.pi * freq * n / rate))) for n in range(rate)
    )
    out = pathlib.Path(__file__).with_name("tone.alaw")
    out.write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
