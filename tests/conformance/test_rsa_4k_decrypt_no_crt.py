"""Mirrors rsa_4k_decrypt_no_crt.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.rsa_decrypt_cases as case
from tests.conformance.vendor import Setup

BITS, CRT = 4096, False


def test_rsa_4k_decrypt_no_session(setup: Setup) -> None:
    case.no_session(setup, BITS, CRT)


def test_rsa_4k_decrypt_incorrect_session_id(setup: Setup) -> None:
    case.incorrect_session_id(setup, BITS, CRT)


def test_rsa_4k_decrypt_incorrect_key_num_table(setup: Setup) -> None:
    case.incorrect_key_num(setup, BITS, 0x0300)


def test_rsa_4k_decrypt_incorrect_key_num_entry(setup: Setup) -> None:
    case.incorrect_key_num(setup, BITS, 0x0020)


def test_rsa_4k_decrypt_incorrect_key_type(setup: Setup) -> None:
    case.incorrect_key_type(setup, BITS)


def test_rsa_4k_decrypt_message_data_below_lower_limit(setup: Setup) -> None:
    case.below_lower_limit(setup, BITS, CRT)


def test_rsa_4k_decrypt_message_data_above_upper_limit(setup: Setup) -> None:
    case.above_upper_limit(setup, BITS, CRT)


def test_rsa_4k_decrypt(setup: Setup) -> None:
    case.decrypt(setup, BITS, CRT)


def test_rsa_4k_encrypt_and_decrypt(setup: Setup) -> None:
    case.encrypt_and_decrypt(setup, BITS, CRT)
