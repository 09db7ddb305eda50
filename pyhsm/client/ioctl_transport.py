"""The Transport protocol (pyhsm/client/transport.py) over the guest driver's ``/dev/azihsmN`` ioctls.

One ``submit`` is one ``AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION`` (docs/guest-driver.md, "ioctl ABI"). The driver
keeps the fd's single session and flushes it when the fd is closed, so ``close`` only closes the fd.

The ioctl returns the CQE status and the response bytes but not the CQE session side band, so a
``Completion`` from this transport reconstructs it from what the driver guarantees (the SDK does the
same): after a successful OPEN the session id is the DDI response header's ``sess_id`` and the
flags say ``id_valid``; after a CLOSE the ioctl answered, the flags say ``id_valid`` and
``safe_to_close``; otherwise the request's flags and id are echoed. ``short_app_id`` is always 0.

The AES fast path (``aes_gcm_encrypt`` / ``aes_gcm_decrypt`` / ``aes_xts_encrypt`` /
``aes_xts_decrypt``) is one ``AZIHSM_AES_DEV_IOCTL_CMD_GCM`` / ``_XTS`` each, on the same fd: the
fd must hold the open session, and the caller passes its id and short_app_id (from OpenSession) and
the keys' ``bulk_key_id``. Importing this module opens nothing.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from pyhsm.protocol.ddi.mbor import MborError, Reader
from pyhsm.protocol.ddi.schemas import RESP_HDR
from pyhsm.protocol.link import SessionFlags, SessionOp
from pyhsm.client.transport import MAX_BUFFER, Completion

HSM_CMD_IOCTL = 0xC0704203
LEGACY_HSM_CMD_IOCTL = 0xC0704202
DEV_INFO_IOCTL = 0xC0B04204
RESET_IOCTL = 0xC1104206
AES_XTS_IOCTL = 0xC190420B
AES_GCM_IOCTL = 0xC190420C

# struct azihsm_cp_generic_cmd (guest/driver/azihsm_ioctl.h): hdr, in, out.
GENERIC_CMD = struct.Struct("<IIII" "QHHB3xI4xQI4xQBxH20x" "QIII4x")
# struct azihsm_ctrl_dev_info
DEV_INFO = struct.Struct("<IH33s33s5s33s16s17s32s")
DEV_INFO_SIZE = 176
# struct azihsm_reset_device_data: hdr, ctxt, abort_type, rsvd, abort_sts, rsvd
RESET = struct.Struct("<IIIIQI80xI160x")
# struct azihsm_aes_ioctl (400 B): hdr; ctxt, op_code, cipher; src ptr/len; dst ptr/len; frame_type,
# session_id, short_app_id; the 44-byte cipher parameters; then out: ctxt, result, cmd_spec (tag),
# byte_count, extended_status, fips_approved, iv_from_fw.
AES_CMD = struct.Struct("<IIII" "QBB6x" "QI4x" "QI4x" "BxHB3x" "44s124x" "QI16sIIB3x12s108x")
GCM_PARAMS = struct.Struct("<I16s12sIIB3x")   # key_id, tag, iv, actual/aligned AAD length, workaround
XTS_PARAMS = struct.Struct("<HxxII16s16x")    # data unit, key_id1, key_id2, tweak
AES_ENCRYPT, AES_DECRYPT = 0, 1
AES_CIPHER_GCM, AES_CIPHER_XTS = 0, 1
AES_FRAME_TYPE = 1
XTS_DATA_UNITS = {None: 0, 512: 1, 4096: 2, 8192: 3}
AES_REFUSED = 0x720   # CQE status: the backend refused; err = low 16 bits of a 0x0870xxxx DDI status

EXTENDED_STATUS = {
    1: "out of memory",
    2: "bad cmdset",
    3: "request longer than 8 KiB",
    4: "response buffer longer than 8 KiB",
    5: "bad request buffer",
    7: "bad response buffer",
    10: "device error or not ready",
    11: "session limit reached on this fd",
    12: "no session on this fd",
    13: "bad session opcode",
    14: "session id mismatch",
    100: "AES: out of memory",
    101: "AES: bad source buffer",
    102: "AES: source pages could not be pinned",
    103: "AES: bad destination buffer",
    104: "AES: destination pages could not be pinned or written",
    106: "AES: device error or not ready",
    107: "AES: session id mismatch",
    108: "AES: short app id mismatch",
    109: "AES: no session on this fd",
    110: "AES: no short app id on this fd",
    111: "AES: no AES queues",
    112: "AES: bad cipher",
    113: "AES: bad frame type",
    114: "AES: bad opcode",
    115: "AES: source longer than 1 MiB",
    116: "AES: destination longer than 1 MiB",
    117: "AES: GCM parameters invalid",
    118: "AES: XTS parameters invalid",
    0x04000001: "abort in progress",
    0x04000002: "command aborted or queue disabled",
    0x0400000A: "controller not ready",
}

RESET_NSSR = 1
RESET_CC_EN = 2
RESET_STATUS = {0: "ok", 1: "already in progress", 2: "invalid device state", 3: "failed",
                4: "invalid abort type"}


RESPONSE_START = b"\xA2\x18\x00"  # DDI envelope: 2-entry map, field 0 (header)


def _opened_session_id(payload: bytes) -> int | None:
    """The new session id in a successful DDI response header, or None."""
    reader = Reader(payload)
    try:
        if reader.take(len(RESPONSE_START)) != RESPONSE_START:
            return None
        header = RESP_HDR.decode(reader)
    except MborError:
        return None
    return None if header.status else header.sess_id


def side_band(flags: SessionFlags, session_id: int, status: int,
              payload: bytes) -> tuple[SessionFlags, int]:
    """The CQE session flags and id a command answered through the ioctl implies."""
    if flags.op == SessionOp.OPEN and not status:
        opened = _opened_session_id(payload)
        if opened is not None:
            return SessionFlags(SessionOp.OPEN, id_valid=True), opened
    if flags.op == SessionOp.CLOSE:
        return SessionFlags(SessionOp.CLOSE, id_valid=True, safe_to_close=True), session_id
    return flags, session_id


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

    def __init__(self, what: str, result: int, err: int) -> None:
        self.result, self.err = result, err
        self.ddi_status = 0x08700000 | err if result == AES_REFUSED else None
        detail = f"DDI status 0x{self.ddi_status:08X}" if self.ddi_status is not None else \
            f"extended status {err:#x} ({EXTENDED_STATUS.get(err, 'device')})"
        super().__init__(f"{what}: status 0x{result:03X}, {detail}")


@dataclass(frozen=True)
class GcmResult:
    data: bytes           # ciphertext (encrypt) or plaintext (decrypt)
    tag: bytes            # encrypt: the tag; decrypt: the tag given
    iv: bytes
    fips_approved: bool


def _ioctl_error(exc: OSError, what: str, ext: int) -> OSError:
    meaning = EXTENDED_STATUS.get(ext, "unknown")
    return OSError(exc.errno, f"{what}: {os.strerror(exc.errno or 0)}; "
                              f"extended status {ext:#x} ({meaning})")


class IoctlTransport:
    """HSM commands through the guest driver: one open fd of ``/dev/azihsmN``."""

    def __init__(self, path: str = "/dev/azihsm0") -> None:
        self._path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def submit(self, request: bytes, flags: SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        """Send one command and wait for its completion. Raises ``OSError`` (errno from the driver,
        extended status in the message) if the driver refuses or aborts the command."""
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self._path}: transport closed")
        src = ctypes.create_string_buffer(bytes(request), len(request)) if request else None
        dst = ctypes.create_string_buffer(dst_len) if dst_len else None
        arg = bytearray(GENERIC_CMD.pack(
            GENERIC_CMD.size, 0, 0, 0,
            0, opc, 0, 0, len(request), ctypes.addressof(src) if src else 0,
            dst_len, ctypes.addressof(dst) if dst else 0, flags.to_byte(), session_id,
            0, 0, 0, 0))
        try:
            fcntl.ioctl(self._fd, HSM_CMD_IOCTL, arg, True)
        except OSError as exc:
            ext = GENERIC_CMD.unpack(arg)[-1]
            raise _ioctl_error(exc, f"{self._path}: HSM command", ext) from exc
        *_, status, byte_count, _ext = GENERIC_CMD.unpack(arg)
        payload = dst.raw[:byte_count] if dst else b""
        done_flags, done_session = side_band(flags, session_id, status, payload)
        return Completion(status, done_flags, done_session, 0, payload)

    # -- the AES fast path ------------------------------------------------------------------------

    def _aes(self, ioctl: int, what: str, *, op: int, cipher: int, src: bytes, dst_len: int,
             session_id: int, short_app_id: int, params: bytes) -> tuple[bytes, int, bytes, bool, bytes]:
        """One AES ioctl; returns (dst bytes written, byte_count, cmd_spec, fips, iv_from_fw)."""
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self._path}: transport closed")
        src_buf = ctypes.create_string_buffer(bytes(src), len(src))
        dst_buf = ctypes.create_string_buffer(dst_len)
        arg = bytearray(AES_CMD.pack(
            AES_CMD.size, 0, 0, 0, 0, op, cipher, ctypes.addressof(src_buf), len(src),
            ctypes.addressof(dst_buf), dst_len, AES_FRAME_TYPE, session_id, short_app_id, params,
            0, 0, b"", 0, 0, 0, b""))
        try:
            fcntl.ioctl(self._fd, ioctl, arg, True)
        except OSError as exc:
            raise _ioctl_error(exc, f"{self._path}: {what}", AES_CMD.unpack(arg)[-3]) from exc
        *_, result, cmd_spec, byte_count, ext, fips, iv = AES_CMD.unpack(arg)
        if result or ext:
            raise AesError(f"{self._path}: {what}", result, ext)
        return dst_buf.raw[:byte_count], byte_count, cmd_spec, bool(fips), iv

    def _gcm(self, op: int, what: str, session_id: int, short_app_id: int, key_id: int, iv: bytes,
             data: bytes, aad: bytes, tag: bytes) -> GcmResult:
        if len(iv) != 12 or len(tag) != 16:
            raise ValueError("GCM takes a 12-byte IV and a 16-byte tag")
        aligned = align_aad(aad)
        src = aligned + data
        params = GCM_PARAMS.pack(key_id, tag, iv, len(aad), len(aligned), 1)
        out, _n, cmd_spec, fips, iv_fw = self._aes(
            AES_GCM_IOCTL, what, op=op, cipher=AES_CIPHER_GCM, src=src, dst_len=len(src),
            session_id=session_id, short_app_id=short_app_id, params=params)
        if op == AES_ENCRYPT:
            return GcmResult(out[len(aligned):], cmd_spec, iv_fw, fips)
        return GcmResult(out[len(aligned):], tag, iv, fips)

    def aes_gcm_encrypt(self, key_id: int, iv: bytes, plaintext: bytes, aad: bytes = b"", *,
                        session_id: int, short_app_id: int) -> GcmResult:
        """AES-256-GCM with bulk key ``key_id``; the result carries the ciphertext and tag.
        Raises ``AesError`` if the device refuses, ``OSError`` if the driver does."""
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
        params = XTS_PARAMS.pack(XTS_DATA_UNITS[data_unit], key_id1, key_id2, tweak)
        out, *_ = self._aes(AES_XTS_IOCTL, what, op=op, cipher=AES_CIPHER_XTS, src=data,
                            dst_len=len(data), session_id=session_id, short_app_id=short_app_id,
                            params=params)
        return out

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

    def close(self) -> None:
        """Close the fd; the driver flushes the session still open on it."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> IoctlTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class DeviceInfo:
    """``AZIHSM_GET_DEV_INFO_IOCTL``: what the driver knows about the function."""

    controller_id: int
    pci_address: str
    serial: str
    firmware_revision: str
    driver_revision: str
    entropy: bytes


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def device_info(path: str = "/dev/azihsm0") -> DeviceInfo:
    """Read the device information of ``path``. Raises ``OSError`` if the driver refuses."""
    arg = bytearray(DEV_INFO_SIZE)
    struct.pack_into("<I", arg, 0, DEV_INFO_SIZE)
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, DEV_INFO_IOCTL, arg, True)
    finally:
        os.close(fd)
    _argsz, ctrl_id, pci, serial, _model, fw, drv, _rsvd, entropy = DEV_INFO.unpack_from(arg)
    return DeviceInfo(ctrl_id, _cstr(pci), _cstr(serial), _cstr(fw), _cstr(drv), entropy)


def reset_device(path: str = "/dev/azihsm0", abort_type: int = RESET_CC_EN) -> None:
    """Ask the driver for a level-2 abort (``RESET_NSSR`` or ``RESET_CC_EN``) and wait for it.
    Raises ``OSError`` carrying the driver's abort status if the reset was refused or failed."""
    arg = bytearray(RESET.pack(RESET.size, 0, 0, 0, 0, abort_type, 0))
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, RESET_IOCTL, arg, True)
    except OSError as exc:
        sts = RESET.unpack(arg)[-1]
        raise OSError(exc.errno, f"{path}: reset type {abort_type}: {os.strerror(exc.errno or 0)}; "
                                 f"abort status {sts} ({RESET_STATUS.get(sts, 'unknown')})") from exc
    finally:
        os.close(fd)
