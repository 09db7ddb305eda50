"""Mirrors establish_credential.rs of the vendor's DDI integration tests (docs/conformance.md): a
freshly reset device without a credential (the vendor's set-up only resets)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from pyhsm.client import DdiError, EncodeError
from pyhsm.protocol.ddi.schemas import ESTABLISH_CREDENTIAL, PUBLIC_KEY
from pyhsm.protocol.ddi.types import KeyType
from tests.conformance.credential_cases import POTA_DER, establish, expect_invalid_key, invalid_key, pota_signature
from tests.conformance.vendor import (
    CRED_ID,
    CRED_PIN,
    POTA_KEY,
    Device,
    S,
    establish_credential,
    expect,
    flip,
    physical_only,
    setup_for_lm,
)


def _tampered(device: Device, **spoilt: object) -> DdiError:
    """EstablishCredential with one piece of the sealed credential spoilt; it fails."""
    dev = device.open()
    cred, pub = establish_credential(dev)
    cred = replace(cred, **{name: flip(getattr(cred, name), index) for name, index in spoilt.items()})
    with pytest.raises(DdiError) as info:
        establish(device, dev, cred, pub)
    return info.value


def _established(device: Device) -> None:
    dev = device.open()
    assert establish(device, dev, *establish_credential(dev))


def test_establish_credential_success_prov_failure_bad_masked_bk3(device: Device) -> None:
    """A tampered masked BK3 fails and leaves the partition unprovisioned: the next attempt succeeds."""
    physical_only(device)
    dev = device.open()
    with pytest.raises(DdiError):
        establish(device, dev, *establish_credential(dev), masked_bk3=flip(device.bk3(dev), 10))
    _established(device)


def test_establish_credential_with_session(device: Device) -> None:
    dev = device.open()
    expect(S.InvalidArg, establish, device, dev, *establish_credential(dev), request={"sess_id": 25})


def test_establish_credential_without_revision(device: Device) -> None:
    dev = device.open()
    expect(S.UnsupportedRevision, establish, device, dev, *establish_credential(dev), request={"rev": None})


def test_establish_credential(device: Device) -> None:
    _established(device)


def test_establish_credential_without_get_key(device: Device) -> None:
    """A credential sealed for no key the device gave out (fixed bytes, a nonce of its own) fails."""
    dev = device.open()
    cred = ESTABLISH_CREDENTIAL(encrypted_id=bytes(range(16)), encrypted_pin=bytes(range(16, 32)),
                                iv=bytes(range(32, 48)), nonce=(2187282822).to_bytes(4, "little") + bytes(28),
                                tag=bytes([29]) * 48)
    pub = establish_credential(device.open())[1]
    with pytest.raises(DdiError):
        establish(device, dev, cred, pub)


def test_establish_credential_multiple(device: Device) -> None:
    dev = device.open()
    cred, pub = establish_credential(dev)
    establish(device, dev, cred, pub)
    for _ in range(10):
        with pytest.raises(DdiError):
            establish(device, dev, cred, pub)


def test_establish_credential_multiple_get_key(device: Device) -> None:
    """Once established, the establish-credential key is no longer given out."""
    _established(device)
    for _ in range(10):
        with pytest.raises(DdiError):
            device.open().get_establish_cred_encryption_key()


def test_establish_credential_tamper_id(device: Device) -> None:
    assert _tampered(device, encrypted_id=10).status is S.PinDecryptionFailed


def test_establish_credential_tamper_pin(device: Device) -> None:
    assert _tampered(device, encrypted_pin=10).status is S.PinDecryptionFailed


def test_establish_credential_tamper_iv(device: Device) -> None:
    assert _tampered(device, iv=10).status is S.PinDecryptionFailed


def test_establish_credential_tamper_nonce(device: Device) -> None:
    assert _tampered(device, nonce=0).status is S.NonceMismatch


def test_establish_credential_tamper_tag(device: Device) -> None:
    assert _tampered(device, tag=10).status is S.PinDecryptionFailed


def test_establish_credential_tamper_pub_key(device: Device) -> None:
    dev = device.open()
    cred, pub = establish_credential(dev)
    with pytest.raises(DdiError):
        establish(device, dev, cred, replace(pub, der=flip(pub.der, 30)))


def test_establish_credential_tamper_signed_pid(device: Device) -> None:
    dev = device.open()
    signature = pota_signature(dev)
    with pytest.raises(DdiError):
        establish(device, dev, *establish_credential(dev), pota_sig=flip(signature, len(signature) // 2))


def test_establish_credential_tamper_pota_pub_key(device: Device) -> None:
    dev = device.open()
    spoilt = PUBLIC_KEY(der=flip(POTA_DER, len(POTA_DER) // 2), key_kind=int(KeyType.Ecc384Public))
    with pytest.raises(DdiError):
        establish(device, dev, *establish_credential(dev), pota_pub=spoilt)


def test_establish_credential_tamper_pota_pub_key_type(device: Device) -> None:
    """A P-384 key declared P-521: the device refuses it, or (Physical) the client cannot encode it."""
    dev = device.open()
    with pytest.raises(EncodeError if device.physical else DdiError):
        establish(device, dev, *establish_credential(dev),
                  pota_pub=PUBLIC_KEY(der=POTA_DER, key_kind=int(KeyType.Ecc521Public)))


def test_establish_credential_null_id(device: Device) -> None:
    dev = device.open()
    expect(S.InvalidAppCredentials, establish, device, dev, *establish_credential(dev, bytes(16), CRED_PIN))


def test_establish_credential_null_pin(device: Device) -> None:
    dev = device.open()
    expect(S.InvalidAppCredentials, establish, device, dev, *establish_credential(dev, CRED_ID, bytes(16)))


def test_establish_credential_verify_nonce_change(device: Device) -> None:
    """The vendor leaves this empty (not observable from its layer); here: a rejected attempt uses up
    the nonce, so the next key comes with a new one."""
    dev = device.open()
    cred, pub = establish_credential(dev, bytes(16), CRED_PIN)
    expect(S.InvalidAppCredentials, establish, device, dev, cred, pub)
    assert dev.get_establish_cred_encryption_key().nonce != cred.nonce


def test_establish_credential_verify_public_key_change(device: Device) -> None:
    """The vendor leaves this empty; here: a reset (NSSR) gives a new establish-credential key."""
    before = device.open().get_establish_cred_encryption_key().pub_key.der
    device.nssr()
    assert device.open().get_establish_cred_encryption_key().pub_key.der != before


def _single_winner(device: Device) -> None:
    """16 handles establish at once with credentials sealed for the same nonce: one wins."""
    handles = [device.open() for _ in range(16)]
    requests = [establish_credential(handle) for handle in handles]
    device.bk3(handles[0])

    def attempt(index: int) -> bool:
        try:
            establish(device, handles[index], *requests[index])
        except DdiError:
            return False
        return True

    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(attempt, range(len(handles)))) == 1


def test_establish_credential_multi_threaded_single_winner_stress(device: Device) -> None:
    for _ in range(10):
        _single_winner(device)
        device.nssr()


def test_establish_credential_multi_threaded_single_winner(device: Device) -> None:
    _single_winner(device)


def test_establish_credential_null_id_then_proper_id(device: Device) -> None:
    dev = device.open()
    cred, pub = establish_credential(dev, bytes(16), CRED_PIN)
    expect(S.InvalidAppCredentials, establish, device, dev, cred, pub)
    proper = establish_credential(dev)
    assert proper[0].nonce != cred.nonce
    assert establish(device, dev, *proper)


def _invalid_point(device: Device, which: str) -> None:
    physical_only(device)
    dev = device.open()
    expect_invalid_key(which, establish, device, dev, establish_credential(dev)[0], invalid_key(which))


def test_establish_credential_invalid_public_key_p384_y_as_prime(device: Device) -> None:
    _invalid_point(device, "y")


def test_establish_credential_invalid_public_key_p384_x_as_prime(device: Device) -> None:
    _invalid_point(device, "x")


def test_establish_credential_invalid_public_key_p384_not_on_curve(device: Device) -> None:
    _invalid_point(device, "curve")


def test_establish_credential_invalid_public_key_p384_point_at_infinity(device: Device) -> None:
    _invalid_point(device, "infinity")


def test_establish_credential_with_reset_in_middle(device: Device) -> None:
    _established(device)
    device.nssr()
    _established(device)


def test_establish_credential_after_reset(device: Device) -> None:
    """After a migration (NSSR) the credential is re-established with the saved BK3 and BMK."""
    lm = setup_for_lm(device)
    device.nssr()
    dev = device.open()
    assert dev.establish_credential(CRED_ID, CRED_PIN, lm.masked_bk3, POTA_KEY, bmk=lm.partition_bmk)
