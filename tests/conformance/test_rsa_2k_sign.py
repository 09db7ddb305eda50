"""Mirrors rsa_2k_sign.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.rsa_sign_cases as case
from tests.conformance.vendor import Setup

BITS = 2048


def test_rsa_2k_sign_no_session(setup: Setup) -> None:
    case.wrong_session(setup, BITS, None)


def test_rsa_2k_sign_incorrect_session_id(setup: Setup) -> None:
    case.wrong_session(setup, BITS, 20)


def test_rsa_2k_sign_incorrect_key_num_table(setup: Setup) -> None:
    case.incorrect_key_num(setup, 0x0300)


def test_rsa_2k_sign_incorrect_key_num_entry(setup: Setup) -> None:
    case.incorrect_key_num(setup, 0x0020)


def test_rsa_2k_sign_incorrect_key_type(setup: Setup) -> None:
    case.incorrect_key_type(setup)


def test_rsa_2k_sign_incorrect_permission(setup: Setup) -> None:
    case.incorrect_permission(setup, BITS)


def test_rsa_2k_sign_message_data_below_lower_limit(setup: Setup) -> None:
    case.out_of_range(setup, BITS, bytes(BITS // 8 - 1) + b"\x01")


def test_rsa_2k_sign_message_data_above_upper_limit(setup: Setup) -> None:
    case.out_of_range(setup, BITS, b"\xff" * (BITS // 8))


def test_rsa_2k_sign_and_verify_pkcs15_sha1(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, False, 20)


def test_rsa_2k_sign_and_verify_pkcs15_sha256(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, False, 32)


def test_rsa_2k_sign_and_verify_pkcs15_sha384(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, False, 48)


def test_rsa_2k_sign_and_verify_pkcs15_sha512(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, False, 64)


def test_rsa_2k_sign_and_verify_pss_sha1(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, True, 20)


def test_rsa_2k_sign_and_verify_pss_sha256(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, True, 32)


def test_rsa_2k_sign_and_verify_pss_sha384(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, True, 48)


def test_rsa_2k_sign_and_verify_pss_sha512(setup: Setup) -> None:
    case.sign_and_verify(setup, BITS, True, 64)
