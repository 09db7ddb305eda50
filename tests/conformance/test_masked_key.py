"""Mirrors masked_key.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import struct

from pyhsm.protocol.ddi.types import AesKeySize
from tests.conformance.vendor import S, Setup, expect, malformed

RESERVED_END = 52   # version, algorithm, seven u16 lengths, 34 reserved bytes


def test_masked_key_malformed_ddi(setup: Setup) -> None:
    assert malformed(setup, "UnmaskKey")[0] == S.DdiDecodeFailed


def test_masked_key_no_session(setup: Setup) -> None:
    masked = setup.dev.aes_generate_key(AesKeySize.Aes128).masked_key
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "UnmaskKey", {"masked_key": masked}, sess_id=None)


def test_masked_key_malformed_mask_key(setup: Setup) -> None:
    """Each region of the blob (version and algorithm, lengths and reserved bytes, IV, metadata,
    encrypted key, tag) overwritten with 0xFF: MaskedKeyDecodeFailed."""
    masked = setup.dev.aes_generate_key(AesKeySize.Aes128).masked_key
    iv, iv_pad, meta, meta_pad, enc, enc_pad, tag = struct.unpack_from("<7H", masked, 4)
    meta_at = RESERVED_END + iv + iv_pad
    enc_at = meta_at + meta + meta_pad
    tag_at = enc_at + enc + enc_pad
    regions = [(0, 4), (4, RESERVED_END), (RESERVED_END, RESERVED_END + iv), (meta_at, meta_at + meta),
               (enc_at, enc_at + enc), (tag_at, tag_at + tag)]
    assert tag_at + tag == len(masked)
    for start, end in regions:
        expect(S.MaskedKeyDecodeFailed, setup.dev.unmask_key, masked[:start] + b"\xff" * (end - start) + masked[end:])
