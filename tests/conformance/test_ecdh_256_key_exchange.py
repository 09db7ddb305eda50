"""Mirrors ecdh_256_key_exchange.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.ecdh_cases as case
from pyhsm.protocol.ddi.types import EccCurve, KeyType
from tests.conformance.vendor import Setup

CURVE = EccCurve.P256


def test_ecdh_256_key_exchange_no_session(setup: Setup) -> None:
    case.no_session(setup, CURVE)


def test_ecdh_256_key_exchange_incorrect_session_id(setup: Setup) -> None:
    case.incorrect_session_id(setup, CURVE)


def test_ecdh_256_key_exchange_incorrect_private_key_num(setup: Setup) -> None:
    case.incorrect_private_key_num(setup, CURVE)


def test_ecdh_256_key_exchange_incorrect_public_key_size(setup: Setup) -> None:
    case.incorrect_public_key_size(setup, CURVE)


def test_ecdh_256_key_exchange_incorrect_target_key_type(setup: Setup) -> None:
    case.incorrect_target_key(setup, CURVE, KeyType.Ecc384Private)


def test_ecdh_256_key_exchange_incorrect_target_key_size(setup: Setup) -> None:
    case.incorrect_target_key(setup, CURVE, KeyType.Secret521)


def test_ecdh_256_key_exchange_incorrect_target_key_usage(setup: Setup) -> None:
    case.incorrect_target_key_usage(setup, CURVE)


def test_ecdh_256_key_exchange_incorrect_input_key_usage(setup: Setup) -> None:
    case.incorrect_input_key_usage(setup, CURVE)


def test_ecdh_256_key_exchange_384_mismatch_input_size(setup: Setup) -> None:
    case.mismatch_input_size(setup, CURVE, EccCurve.P384)


def test_ecdh_256_key_exchange_521_mismatch_input_size(setup: Setup) -> None:
    case.mismatch_input_size(setup, CURVE, EccCurve.P521)


def test_ecdh_256_key_exchange_invalid_public_key_y_as_prime(setup: Setup) -> None:
    case.invalid_point(setup, CURVE, "y")


def test_ecdh_256_key_exchange_invalid_public_key_x_as_prime(setup: Setup) -> None:
    case.invalid_point(setup, CURVE, "x")


def test_ecdh_256_key_exchange_invalid_public_key_not_on_curve(setup: Setup) -> None:
    case.invalid_point(setup, CURVE, "curve")


def test_ecdh_256_key_exchange_invalid_public_key_point_at_infinity(setup: Setup) -> None:
    case.invalid_point(setup, CURVE, "infinity")


def test_ecdh_256_key_exchange(setup: Setup) -> None:
    case.exchange(setup, CURVE)


def test_ecdh_256_key_exchange_key_tag(setup: Setup) -> None:
    case.key_tag(setup, CURVE)
