"""Mirrors aes_xts_encrypt_decrypt.rs of the vendor's DDI integration tests (docs/conformance.md): XTS
data through the fast path, which is not emulated yet."""

from __future__ import annotations

import pytest
from vendor import FAST_PATH, Setup


def test_aes_xts_encrypt_decrypt(setup: Setup) -> None:
    pytest.skip(FAST_PATH)


def test_aes_xts_encrypt_with_identical_key_content(setup: Setup) -> None:
    pytest.skip(FAST_PATH)


def test_aes_xts_encrypt_with_gcm_key_in_the_mix(setup: Setup) -> None:
    pytest.skip(FAST_PATH)
