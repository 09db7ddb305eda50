"""Mirrors open_key.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from pyhsm.protocol.ddi.types import AesKeySize
from tests.conformance.vendor import S, Setup, expect, rsa_import

KEY_TAG = 0x5453


def _create_key(setup: Setup) -> int:
    return setup.dev.aes_generate_key(AesKeySize.Aes128, tag=KEY_TAG).key_id


def test_open_key_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "OpenKey", {"key_tag": KEY_TAG}, sess_id=None)


def test_open_key_incorrect_session_id(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "OpenKey", {"key_tag": KEY_TAG}, sess_id=20)


def test_open_key_incorrect_key_tag(setup: Setup) -> None:
    expect(S.KeyNotFound, setup.dev.open_key, 0x0300)


def test_open_key_no_key_tag(setup: Setup) -> None:
    rsa_import(setup.dev, 2048)
    expect(S.KeyNotFound, setup.dev.open_key, 0)


def test_open_key(setup: Setup) -> None:
    key_id = _create_key(setup)
    assert setup.dev.open_key(KEY_TAG).key_id == key_id


def test_open_deleted_key(setup: Setup) -> None:
    setup.dev.delete_key(_create_key(setup))
    expect(S.KeyNotFound, setup.dev.open_key, KEY_TAG)
