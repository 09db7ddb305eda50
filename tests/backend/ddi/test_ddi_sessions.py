"""Credentials, sessions, the nonce, the session side band, PIN change and lockout, resets."""

from __future__ import annotations

import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.ddi.ops.credentials import MAX_FAILED_LOGINS
from pyhsm.client import DdiError, DeviceError, EncodeError, HsmClient, Usage
from pyhsm.client.transport import Completion
from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, DeviceKind, EccCurve, KeyType
from pyhsm.protocol.link import SessionFlags, SessionOp
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, LocalTransport, Provisioned, expect, provision


def test_api_rev_and_device_info(client: HsmClient) -> None:
    rev = client.get_api_rev()
    assert (rev.min.major, rev.min.minor, rev.max.major, rev.max.minor) == (1, 0, 1, 0)
    info = client.get_device_info()
    assert info.kind == DeviceKind.Physical and info.tables == 4 and info.fips_approved is False


def test_establish_credential_once(client: HsmClient, partition) -> None:
    hsm = provision(client, partition)
    assert len(hsm.bmk) == 288
    assert len(hsm.masked_bk3) == 236
    expect(S.KeyNotFound, client.get_establish_cred_encryption_key)
    other = HsmClient(LocalTransport(partition))
    expect(S.KeyNotFound, other.establish_credential, APP_ID, PIN, hsm.masked_bk3, hsm.pota)


def test_establish_credential_errors(client: HsmClient) -> None:
    pota = ec.generate_private_key(ec.SECP384R1())
    masked = client.init_bk3(BK3)
    expect(S.InvalidArg, client.establish_credential, APP_ID, PIN, b"", pota)
    expect(S.InvalidAppCredentials, client.establish_credential, bytes(16), PIN, masked, pota)
    expect(S.InvalidAppCredentials, client.establish_credential, APP_ID, bytes(16), masked, pota)
    tampered = bytearray(masked)
    tampered[-1] ^= 1
    expect(S.MaskedKeyDecodeFailed, client.establish_credential, APP_ID, PIN, bytes(tampered), pota)
    expect(S.CredentialsNotEstablished, client.get_session_encryption_key)
    expect(S.CredentialsNotEstablished, client.open_session, APP_ID, PIN)
    client.establish_credential(APP_ID, PIN, masked, pota)


def test_bad_pota_signature_is_rejected(client: HsmClient) -> None:
    class WrongSigner:
        """Signs with one key but presents another."""

        def __init__(self) -> None:
            self.real, self.shown = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())

        def sign(self, data, algorithm):
            return self.real.sign(data, algorithm)

        def public_key(self):
            return self.shown.public_key()

    expect(S.InvalidArg, client.establish_credential, APP_ID, PIN, client.init_bk3(BK3), WrongSigner())


def test_nonce_is_single_use(hsm: Provisioned) -> None:
    other = hsm.another_client()
    stale = other.get_session_encryption_key()
    hsm.client.close_session()
    hsm.client.open_session(APP_ID, PIN)   # consumes the nonce
    from pyhsm.protocol.ddi.credential_seal import seal
    from pyhsm.protocol.ddi.schemas import PUBLIC_KEY, SESSION_CREDENTIAL
    sealed = seal(stale.pub_key.der, stale.nonce, [APP_ID, PIN, bytes(48)])
    cred = SESSION_CREDENTIAL(encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1],
                              encrypted_seed=sealed.pieces[2], iv=sealed.iv, nonce=stale.nonce, tag=sealed.tag)
    expect(S.NonceMismatch, other.call, "OpenSession", encrypted_credential=cred,
           pub_key=PUBLIC_KEY(der=sealed.client_public_der, key_kind=23))
    bad_tag = SESSION_CREDENTIAL(encrypted_id=sealed.pieces[0], encrypted_pin=sealed.pieces[1],
                                 encrypted_seed=sealed.pieces[2], iv=sealed.iv, nonce=hsm.partition.vault.nonce,
                                 tag=bytes(48))
    expect(S.PinDecryptionFailed, other.call, "OpenSession", encrypted_credential=bad_tag,
           pub_key=PUBLIC_KEY(der=sealed.client_public_der, key_kind=23))
    with pytest.raises(EncodeError):  # a P-384 key declared P-256 has no Physical (raw) form
        other.call("OpenSession", encrypted_credential=bad_tag, pub_key=PUBLIC_KEY(der=sealed.client_public_der,
                                                                                    key_kind=22))


def test_eight_sessions_limit_and_side_band(hsm: Provisioned) -> None:
    clients = [hsm.client] + [hsm.another_client() for _ in range(7)]
    for c in clients[1:]:
        c.open_session(APP_ID, PIN)
    assert sorted(c.session_id for c in clients) == list(range(8))
    ninth = hsm.another_client()
    expect(S.VaultSessionLimitReached, ninth.open_session, APP_ID, PIN)
    clients[3].close_session()
    assert clients[3].session_id is None
    ninth.open_session(APP_ID, PIN)
    assert ninth.session_id == 3


def test_open_session_completion_flags(hsm: Provisioned) -> None:
    transport: LocalTransport = hsm.client.transport
    c = hsm.another_client()
    c.open_session(APP_ID, PIN)
    resp = c.transport.responses[-1]
    flags = SessionFlags.from_byte(resp.session_flags)
    assert flags == SessionFlags(SessionOp.OPEN, True, True, False) and resp.session_id == c.session_id
    c.close_session()
    flags = SessionFlags.from_byte(c.transport.responses[-1].session_flags)
    assert flags == SessionFlags(SessionOp.CLOSE, True, False, True)
    assert transport.responses  # the main client is unaffected


def _raw(partition, op: str, flags: SessionFlags, side_id: int, hdr_sess: int | None, **fields) -> link.Response:
    spec = BY_NAME[op]
    payload = envelope.encode_request(spec.code, spec.request, spec.request(**fields), rev=envelope.rev(1, 0),
                                      sess_id=hdr_sess)
    return partition.execute(link.Request(1, 1, 0, flags.to_byte(), side_id, 8192, payload))


def test_side_band_mismatches_are_transport_errors(hsm: Provisioned) -> None:
    p, sid = hsm.partition, hsm.client.session_id
    ins = SessionFlags(SessionOp.IN_SESSION, True)
    assert _raw(p, "GetDeviceInfo", ins, sid, sid).status == 0x710
    r = _raw(p, "Hmac", SessionFlags(SessionOp.NONE), 0, sid, key_id=1, msg=b"")
    assert (r.status, r.payload) == (0x710, b"")
    assert _raw(p, "Hmac", ins, sid + 1, sid, key_id=1, msg=b"").status == 0x711
    assert _raw(p, "Hmac", SessionFlags(SessionOp.IN_SESSION, False), 0, sid, key_id=1, msg=b"").status == 0x711
    r = _raw(p, "CloseSession", SessionFlags(SessionOp.CLOSE, True), sid + 1, sid)
    assert r.status == 0x711 and SessionFlags.from_byte(r.session_flags) == SessionFlags(SessionOp.CLOSE, True,
                                                                                           False, True)
    r = _raw(p, "Hmac", SessionFlags(SessionOp.IN_SESSION, False), 0, None, key_id=1, msg=b"")
    assert envelope.decode_response(r.payload, BY_NAME["Hmac"].response)[0].status == S.SessionExpected
    r = _raw(p, "Hmac", ins, 6, 6, key_id=1, msg=b"")
    assert envelope.decode_response(r.payload, BY_NAME["Hmac"].response)[0].status == S.InvalidArg
    empty = p.execute(link.Request(1, 1, 0, 0, 0, 8192, b""))
    assert empty.status == 0x712
    assert p.execute(link.Request(1, 1, 5, 0, 0, 8192, b"x")).status == 0x001


def test_flush_closes_the_session_and_its_keys(hsm: Provisioned) -> None:
    c, p = hsm.client, hsm.partition
    key = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    sid = c.session_id
    r = p.execute(link.Request(1, 1, 1, SessionFlags(SessionOp.CLOSE, True).to_byte(), sid, 0, b""))
    assert r.status == 0 and SessionFlags.from_byte(r.session_flags).safe_to_close
    assert p.vault.sessions.lookup(sid) is None
    with pytest.raises(Exception):
        p.vault.keys.get(key.key_id)
    assert p.execute(link.Request(1, 1, 1, 6, sid, 0, b"")).status == 0x712


def test_session_keys_are_isolated_and_die_with_their_session(hsm: Provisioned) -> None:
    c = hsm.client
    other = hsm.another_client()
    other.open_session(APP_ID, PIN)
    private = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    shared = c.aes_generate_key(AesKeySize.Aes256)
    expect(S.InvalidPermissions, other.aes_encrypt_decrypt, private.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    expect(S.InvalidPermissions, other.delete_key, private.key_id)
    other.aes_encrypt_decrypt(shared.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    c.close_session()
    c.open_session(APP_ID, PIN)
    expect(S.KeyNotFound, c.aes_encrypt_decrypt, private.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    c.aes_encrypt_decrypt(shared.key_id, AesOp.Encrypt, bytes(16), bytes(16))


def test_partitions_are_isolated(hsm: Provisioned, identity, tmp_path) -> None:
    from pyhsm.backend.ddi.partition import Partition
    second = Partition(serial=identity.serial, index=1, state_dir=tmp_path / "p1", identity=identity)
    other = provision(HsmClient(LocalTransport(second)), second)
    key = hsm.client.ecc_generate_key_pair(EccCurve.P256, tag=1)
    expect(S.KeyNotFound, other.client.open_key, 1)
    with pytest.raises(DdiError):
        other.client.ecc_sign(key.private_key_id, bytes(32))
    expect(S.MaskedKeyDecodeFailed, other.client.unmask_key, key.masked_key)


def test_change_pin_and_lockout(hsm: Provisioned) -> None:
    c = hsm.client
    new_pin = b"new-pin-87654321"
    c.change_pin(new_pin)
    expect(S.InvalidAppCredentials, c.change_pin, bytes(16))
    other = hsm.another_client()
    expect(S.InvalidAppCredentials, other.open_session, APP_ID, PIN)
    other.open_session(APP_ID, new_pin)
    other.close_session()
    for _ in range(MAX_FAILED_LOGINS - 1):
        expect(S.InvalidAppCredentials, other.open_session, APP_ID, PIN)
    assert hsm.partition.vault.failed_logins == MAX_FAILED_LOGINS - 1
    expect(S.InvalidAppCredentials, other.open_session, APP_ID, PIN)
    expect(S.LoginFailed, other.open_session, APP_ID, new_pin)


def test_revision_rules(hsm: Provisioned) -> None:
    p, sid = hsm.partition, hsm.client.session_id
    spec = BY_NAME["GetApiRev"]
    with_rev = envelope.encode_request(spec.code, spec.request, spec.request(), rev=envelope.rev(1, 0))
    r = p.execute(link.Request(1, 1, 0, 0, 0, 8192, with_rev))
    assert envelope.decode_response(r.payload, spec.response)[0].status == S.UnsupportedRevision
    spec = BY_NAME["GetDeviceInfo"]
    for rev in (None, envelope.rev(2, 0)):
        payload = envelope.encode_request(spec.code, spec.request, spec.request(), rev=rev)
        r = p.execute(link.Request(1, 1, 0, 0, 0, 8192, payload))
        assert envelope.decode_response(r.payload, spec.response)[0].status == S.UnsupportedRevision
    r = _raw(p, "GetDeviceInfo", SessionFlags(SessionOp.NONE, True), sid, sid)
    assert r.status == 0x710 or envelope.decode_response(r.payload, spec.response)[0].status == S.SessionNotExpected


def test_controller_reset_closes_sessions(hsm: Provisioned) -> None:
    c = hsm.client
    app_key = c.aes_generate_key(AesKeySize.Aes256, tag=4)
    session_key = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    hsm.partition.reset(link.ResetKind.CONTROLLER)
    expect(S.InvalidArg, c.aes_encrypt_decrypt, app_key.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    fresh = hsm.another_client()
    fresh.open_session(APP_ID, PIN)
    assert fresh.open_key(4).key_id == app_key.key_id
    expect(S.KeyNotFound, fresh.aes_encrypt_decrypt, session_key.key_id, AesOp.Encrypt, bytes(16), bytes(16))


def test_nssr_live_migration_recovery(hsm: Provisioned) -> None:
    """NSSR (docs/ddi.md, "Resets"): everything but sealed BK3 goes; the recovery flow brings keys back from blobs."""
    c = hsm.client
    c.set_sealed_bk3(hsm.masked_bk3)
    app_key = c.ecc_generate_key_pair(EccCurve.P384, tag=0x51)
    session_key = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    ct = c.aes_encrypt_decrypt(session_key.key_id, AesOp.Encrypt, bytes(32), bytes(16)).msg
    unwrap = c.get_unwrapping_key()
    sid = c.session_id
    hsm.partition.reset(link.ResetKind.NSSR)
    expect(S.SessionNeedsRenegotiation, c.open_key, 0x51)
    assert c.get_sealed_bk3() == hsm.masked_bk3
    assert c.get_establish_cred_encryption_key().nonce
    c2 = hsm.another_client()
    c2.establish_credential(APP_ID, PIN, c.get_sealed_bk3(), hsm.pota, bmk=hsm.bmk,
                            masked_unwrapping_key=unwrap.masked_key)
    assert c2.get_session_encryption_key()
    c.reopen_session(sid, APP_ID, PIN, hsm.seed, hsm.bmk_session)
    assert c.session_id == sid
    restored = c.unmask_key(session_key.masked_key)
    assert c.aes_encrypt_decrypt(restored.key_id, AesOp.Decrypt, ct, bytes(16)).msg == bytes(32)
    expect(S.KeyNotFound, c.open_key, 0x51)
    back = c.unmask_key(app_key.masked_key)
    assert c.open_key(0x51).key_id == back.key_id and back.pub_key.der == app_key.pub_key.der
    assert c.get_unwrapping_key().pub_key.der == unwrap.pub_key.der
    expect(S.InvalidArg, c.reopen_session, sid, APP_ID, PIN, hsm.seed, hsm.bmk_session)


def test_close_of_renegotiation_pending_session_frees_it(hsm: Provisioned) -> None:
    hsm.partition.reset(link.ResetKind.NSSR)
    hsm.client.close_session()
    assert hsm.partition.vault.sessions.ids() == []


def test_dst_len_too_small(hsm: Provisioned) -> None:
    spec = BY_NAME["GetDeviceInfo"]
    payload = envelope.encode_request(spec.code, spec.request, spec.request(), rev=envelope.rev(1, 0))
    r = hsm.partition.execute(link.Request(1, 1, 0, 0, 0, 50, payload))
    header, _ = envelope.decode_response(r.payload, spec.response)
    assert r.status == 0 and header.status == S.InsufficientBuffer
    assert hsm.partition.execute(link.Request(1, 1, 0, 0, 0, 4, payload)).status == 0x002


def test_concurrent_sessions_nonce_race(hsm: Provisioned) -> None:
    """Eight clients open sessions at once: some lose the nonce race (NonceMismatch), retries succeed."""
    hsm.client.close_session()
    clients = [hsm.another_client() for _ in range(8)]
    stale_keys = [c.get_session_encryption_key() for c in clients]
    assert len({k.nonce for k in stale_keys}) == 1
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(c: HsmClient) -> None:
        barrier.wait()
        mismatches = 0
        while True:
            try:
                c.open_session(APP_ID, PIN)
                break
            except DdiError as exc:
                assert exc.status is S.NonceMismatch
                mismatches += 1
        with lock:
            outcomes.append(f"{mismatches}")

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(c.session_id for c in clients) == list(range(8))
    # Deterministic race: each client used the nonce every other client had also read.
    from pyhsm.protocol.ddi.credential_seal import seal
    from pyhsm.protocol.ddi.schemas import PUBLIC_KEY, SESSION_CREDENTIAL
    sealed = [seal(k.pub_key.der, k.nonce, [APP_ID, PIN, os.urandom(48)]) for k in stale_keys[:2]]
    for c in clients[:2]:
        c.close_session()
    results = []
    for c, s, k in zip(clients[:2], sealed, stale_keys[:2]):
        cred = SESSION_CREDENTIAL(encrypted_id=s.pieces[0], encrypted_pin=s.pieces[1], encrypted_seed=s.pieces[2],
                                  iv=s.iv, nonce=k.nonce, tag=s.tag)
        try:
            c.call("OpenSession", encrypted_credential=cred, pub_key=PUBLIC_KEY(der=s.client_public_der, key_kind=23))
            results.append("ok")
        except DdiError as exc:
            results.append(exc.name)
    assert results == ["NonceMismatch", "NonceMismatch"]  # the first races above already consumed it
    clients[0].open_session(APP_ID, PIN)  # a retry with a fresh nonce succeeds


def test_device_error_surfaces_cqe_status(hsm: Provisioned) -> None:
    class Broken:
        def submit(self, *args, **kwargs):
            return Completion(0x701, SessionFlags(), 0, 0, b"")

    with pytest.raises(DeviceError) as info:
        HsmClient(Broken()).get_api_rev()
    assert info.value.status == 0x701


def test_a_handler_bug_becomes_internal_error(hsm: Provisioned, monkeypatch) -> None:
    from pyhsm.backend.ddi import ops

    def broken(call_, req):
        raise RuntimeError("bug")

    monkeypatch.setitem(ops.HANDLERS, "Hmac", broken)
    expect(S.InternalError, hsm.client.hmac, 1, b"x")
    assert hsm.client.get_device_info().kind == DeviceKind.Physical  # still serving


def test_session_closed_while_crypto_runs_unlocked(hsm: Provisioned, monkeypatch) -> None:
    """Crypto runs without the partition lock; a session closed meanwhile fails the command cleanly."""
    from pyhsm.backend.ddi.ops import common

    c = hsm.client
    key = c.ecc_generate_key_pair(EccCurve.P384, Usage.DERIVE)
    peer = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sid = c.session_id
    real = common.private_key

    class Closing:
        """Wraps the key: its exchange closes the session from another thread first."""

        def __init__(self, inner) -> None:
            self.inner, self.curve = inner, inner.curve

        def exchange(self, algorithm, peer_key):
            closer = threading.Thread(target=lambda: hsm.partition.execute(
                link.Request(1, 1, 1, SessionFlags(SessionOp.CLOSE, True).to_byte(), sid, 0, b"")))
            closer.start()
            closer.join(5)
            return self.inner.exchange(algorithm, peer_key)

    monkeypatch.setattr("pyhsm.backend.ddi.ops.ecc.private_key", lambda entry: Closing(real(entry)))
    expect(S.InvalidArg, c.ecdh_key_exchange, key.private_key_id, peer, KeyType.Secret384, session_only=True)
    assert hsm.partition.vault.sessions.lookup(sid) is None
    assert not [e for _, e in hsm.partition.vault.keys if e.session == sid]
