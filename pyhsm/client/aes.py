"""The AES fast path as the client offers it, over any transport that reaches the AES queues.

``AesFastPath`` gives ``aes_gcm_encrypt`` / ``aes_gcm_decrypt`` / ``aes_xts_encrypt`` /
``aes_xts_decrypt`` once; a transport supplies one method, ``_aes_command``, that carries one
AES-queue command and returns its completion (``AesCompletion``). The ioctl transport
(``pyhsm.client.ioctl_transport``) does it with the driver's AES ioctls, the socket transport
(``pyhsm.client.socket_transport``) with the link's AES_REQUEST / AES_RESPONSE (docs/link-protocol.md,
"AES fast path"). Keys are bulk keys named by their ``bulk_key_id``; the caller passes the session id
and short_app_id of the session that may use them (docs/device.md, "AES path").
"""

from __future__ import annotations

from typing import NamedTuple

AES_ENCRYPT, AES_DECRYPT = 0, 1
AES_CIPHER_GCM, AES_CIPHER_XTS = 0, 1
XTS_DATA_UNITS = {None: 0, 512: 1, 4096: 2, 8192: 3}
AES_REFUSED = 0x720   # CQE status: the backend refused; err = low 16 bits of a 0x0870xxxx DDI status


def align_aad(aad: bytes) -> bytes:
    """The SDK's 32-byte alignment of GCM AAD (docs/device.md, "AES path"): unchanged if a multiple of
    32; else 16 zero bytes in front when ``len % 32 <= 16``, then zeros up to a multiple of 32."""
    rem = len(aad) % 32
    if rem == 0:
        return aad
    if rem <= 16:
        aad = bytes(16) + aad
    return aad + bytes(-len(aad) % 32)


class AesError(Exception):
    """The AES command reached the device, which refused it (``result`` = CQE status, ``err`` = CQE
    err or a driver code). ``ddi_status`` is the full DDI status of a backend refusal, else None."""

    def __init__(self, what: str, result: int, err: int, meaning: str = "device") -> None:
        self.result, self.err = result, err
        self.ddi_status = 0x08700000 | err if result == AES_REFUSED else None
        detail = f"DDI status 0x{self.ddi_status:08X}" if self.ddi_status is not None else \
            f"extended status {err:#x} ({meaning})"
        super().__init__(f"{what}: status 0x{result:03X}, {detail}")


class GcmResult(NamedTuple):
    data: bytes           # ciphertext (encrypt) or plaintext (decrypt)
    tag: bytes            # encrypt: the tag; decrypt: the tag given
    iv: bytes
    fips_approved: bool


# A successful completion, as a plain tuple: (the output after the aligned AAD (GCM) or from 0 (XTS), the
# tag and the IV the device reported (GCM encrypt), its FIPS flag).
AesCompletion = tuple[bytes, bytes, bytes, bool]


class AesFastPath:
    """The four AES calls, over ``_aes_command`` (which raises ``AesError`` on a nonzero status).

    ``_aes_command`` takes the command's fields as plain arguments (no record object per command: under
    TCG every object built on the way costs, docs/benchmarks.md): ``what`` (for messages), ``cipher``
    (AES_CIPHER_GCM / _XTS), ``op`` (AES_ENCRYPT / _DECRYPT), ``session_id``, ``short_app_id``, the key
    ids (GCM: key_id2 0), ``tag_or_tweak`` (GCM: the expected tag; XTS: the tweak), ``iv`` (XTS: None),
    the GCM real and aligned AAD lengths, the XTS data unit code (0 the whole buffer, 1 512, 2 4096,
    3 8192) and ``src`` (GCM: the aligned AAD then the data; XTS: the data)."""

    def _aes_command(self, what: str, cipher: int, op: int, session_id: int, short_app_id: int, key_id1: int,
                     key_id2: int, tag_or_tweak: bytes, iv: bytes | None, aad_len: int, aligned_aad_len: int,
                     dul: int, src: bytes) -> AesCompletion:
        raise NotImplementedError

    def _gcm(self, op: int, what: str, session_id: int, short_app_id: int, key_id: int, iv: bytes,
             data: bytes, aad: bytes, tag: bytes) -> GcmResult:
        if len(iv) != 12 or len(tag) != 16:
            raise ValueError("GCM takes a 12-byte IV and a 16-byte tag")
        aligned = align_aad(aad) if aad else aad
        data, tag_out, iv_out, fips = self._aes_command(
            what, AES_CIPHER_GCM, op, session_id, short_app_id, key_id, 0, tag, iv, len(aad), len(aligned), 0,
            aligned + data if aligned else data)
        if op == AES_ENCRYPT:
            return GcmResult(data, tag_out, iv_out, fips)
        return GcmResult(data, tag, iv, fips)

    def aes_gcm_encrypt(self, key_id: int, iv: bytes, plaintext: bytes, aad: bytes = b"", *,
                        session_id: int, short_app_id: int) -> GcmResult:
        """AES-256-GCM with bulk key ``key_id``; the result carries the ciphertext and tag.
        Raises ``AesError`` if the device refuses, ``OSError`` if the path does."""
        return self._gcm(AES_ENCRYPT, "GCM encrypt", session_id, short_app_id, key_id, iv, plaintext,
                         aad, bytes(16))

    def aes_gcm_decrypt(self, key_id: int, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes = b"", *,
                        session_id: int, short_app_id: int) -> GcmResult:
        """Decrypt and verify; a wrong tag (or key) raises ``AesError``."""
        return self._gcm(AES_DECRYPT, "GCM decrypt", session_id, short_app_id, key_id, iv, ciphertext,
                         aad, tag)

    def _xts(self, op: int, what: str, session_id: int, short_app_id: int, key_id1: int, key_id2: int,
             tweak: bytes, data: bytes, data_unit: int | None) -> bytes:
        if len(tweak) != 16:
            raise ValueError("XTS takes a 16-byte tweak")
        return self._aes_command(what, AES_CIPHER_XTS, op, session_id, short_app_id, key_id1, key_id2, tweak,
                                 None, 0, 0, XTS_DATA_UNITS[data_unit], data)[0]

    def aes_xts_encrypt(self, key_id1: int, key_id2: int, tweak: bytes, data: bytes, *,
                        data_unit: int | None = None, session_id: int, short_app_id: int) -> bytes:
        """AES-256-XTS with bulk keys ``key_id1`` (data) and ``key_id2`` (tweak); ``data_unit`` 512,
        4096, 8192 or None (the whole buffer is one unit)."""
        return self._xts(AES_ENCRYPT, "XTS encrypt", session_id, short_app_id, key_id1, key_id2, tweak,
                         data, data_unit)

    def aes_xts_decrypt(self, key_id1: int, key_id2: int, tweak: bytes, data: bytes, *,
                        data_unit: int | None = None, session_id: int, short_app_id: int) -> bytes:
        return self._xts(AES_DECRYPT, "XTS decrypt", session_id, short_app_id, key_id1, key_id2, tweak,
                         data, data_unit)
