"""Mirrors aes_xts_bulk_stress.rs of the vendor's DDI integration tests (docs/conformance.md): XTS bulk
data through the fast path, which is not emulated yet."""

from __future__ import annotations

import pytest
from vendor import FAST_PATH, Setup


def test_aes_xts_encrypt_decrypt_multi_threaded_stress(setup: Setup) -> None:
    pytest.skip(FAST_PATH)
