"""The Transport protocol (pyhsm/client/transport.py) over the guest driver's ``/dev/azihsmN`` ioctls.

One ``submit`` is one ``AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION`` (docs/guest-driver.md, "ioctl ABI"). The driver
keeps the fd's single session and flushes it when the fd is closed, so ``close`` only closes the fd.

The ioctl returns the CQE status and the response bytes but not the CQE session side band, so a
``Completion`` from this transport reconstructs it from what the driver guarantees (the SDK does the
same): after a successful OPEN the session id is the DDI response header's ``sess_id`` and the
flags say ``id_valid``; after a CLOSE the ioctl answered, the flags say ``id_valid`` and
``safe_to_close``; otherwise the request's flags and id are echoed. ``short_app_id`` is always 0.

The AES fast path (``aes_gcm_encrypt`` / ``aes_gcm_decrypt`` / ``aes_xts_encrypt`` /
``aes_xts_decrypt``, shared with the socket transport in ``pyhsm.client.aes``) is one
``AZIHSM_AES_DEV_IOCTL_CMD_GCM`` / ``_XTS`` each, on the same fd: the
fd must hold the open session, and the caller passes its id and short_app_id (from OpenSession) and
the keys' ``bulk_key_id``. Importing this module opens nothing.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import struct
import sys
from dataclasses import dataclass

from pyhsm.client.aes import AES_CIPHER_GCM, AesCompletion, AesError, AesFastPath
from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol.ddi.envelope import response_header
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.link import SessionFlags, SessionOp

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
AES_IN = struct.Struct("<IIII" "QBB6x" "QI4x" "QI4x" "BxHB3x" "44s")   # the in half (72 + 44 bytes)
AES_OUT = struct.Struct("<I16sIIB3x12s")   # out: result .. iv_from_fw, at AES_OUT_AT
AES_OUT_AT = 248
GCM_PARAMS = struct.Struct("<I16s12sIIB3x")   # key_id, tag, iv, actual/aligned AAD length, workaround
XTS_PARAMS = struct.Struct("<HxxII16s16x")    # data unit, key_id1, key_id2, tweak
AES_FRAME_TYPE = 1

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


def _bytes_addressable() -> bool:
    """Whether a bytes object's contents lie at ``id(obj) + _BYTES_DATA`` (CPython only, checked): then
    the AES source is passed by that address and the output lands directly in the bytes object
    returned."""
    if platform.python_implementation() != "CPython":
        return False
    probe = bytes(range(7, 40))
    return ctypes.string_at(id(probe) + _BYTES_DATA, len(probe)) == probe


_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
_BYTES_DATA = sys.getsizeof(b"") - 1        # offsetof(PyBytesObject, ob_sval)
_BYTES_ADDRESSABLE = _bytes_addressable()
FILLED_BELOW = 1 << 14   # a destination smaller than this is a zero-filled bytes(n): quicker than the C call


def _destination(n: int) -> tuple[object, int]:
    """A destination of ``n`` bytes for the driver to write and its address. On CPython it is a new
    bytes object whose contents are not yet set (PyBytes_FromStringAndSize(NULL, n)), not seen by anyone
    before the ioctl has filled it: the output needs no copy in user space, which under TCG costs as much
    as the cipher itself (docs/benchmarks.md). Below ``FILLED_BELOW`` bytes it is ``bytes(n)`` (n > 1:
    ``bytes(1)`` is a shared object)."""
    if _BYTES_ADDRESSABLE and n > 1:
        out = bytes(n) if n < FILLED_BELOW else _new_bytes(None, n)
        return out, id(out) + _BYTES_DATA
    buf = ctypes.create_string_buffer(n)
    return buf, ctypes.addressof(buf)


def _source(data: bytes) -> tuple[object, int]:
    """Something holding ``data`` for the driver to read, and the address of its contents (0 when empty):
    a bytes object itself where its contents are addressable (``_BYTES_ADDRESSABLE``), else a C copy. The
    caller keeps the returned object alive across the ioctl."""
    if not data:
        return None, 0
    if _BYTES_ADDRESSABLE and type(data) is bytes:
        return data, id(data) + _BYTES_DATA
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    return buf, ctypes.addressof(buf)


def _opened_session_id(payload: bytes) -> int | None:
    """The new session id in a successful DDI response header, or None."""
    try:
        header = response_header(payload)
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


def _ioctl_error(exc: OSError, what: str, ext: int) -> OSError:
    meaning = EXTENDED_STATUS.get(ext, "unknown")
    return OSError(exc.errno, f"{what}: {os.strerror(exc.errno or 0)}; "
                              f"extended status {ext:#x} ({meaning})")


class IoctlTransport(AesFastPath):
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
        src, src_addr = _source(request)   # held until the ioctl returned
        dst, dst_addr = _destination(dst_len) if dst_len else (None, 0)
        arg = bytearray(GENERIC_CMD.pack(
            GENERIC_CMD.size, 0, 0, 0,
            0, opc, 0, 0, len(request), src_addr, dst_len, dst_addr, flags.to_byte(), session_id,
            0, 0, 0, 0))
        try:
            fcntl.ioctl(self._fd, HSM_CMD_IOCTL, arg, True)
        except OSError as exc:
            ext = GENERIC_CMD.unpack(arg)[-1]
            raise _ioctl_error(exc, f"{self._path}: HSM command", ext) from exc
        *_, status, byte_count, _ext = GENERIC_CMD.unpack(arg)
        payload = ctypes.string_at(dst_addr, min(byte_count, dst_len)) if dst_len else b""
        done_flags, done_session = side_band(flags, session_id, status, payload)
        return Completion(status, done_flags, done_session, 0, payload)

    # -- the AES fast path ------------------------------------------------------------------------

    def _aes_command(self, what: str, cipher: int, op: int, session_id: int, short_app_id: int, key_id1: int,
                     key_id2: int, tag_or_tweak: bytes, iv: bytes | None, aad_len: int, aligned_aad_len: int,
                     dul: int, src: bytes) -> AesCompletion:
        """One AES ioctl (``AesFastPath`` gives the fields). The source is passed in place (the driver
        only reads it); the output lands in the bytes object returned (``_destination``), copied only when
        it does not fill it (GCM with AAD)."""
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self._path}: transport closed")
        n = len(src)
        held, src_addr = _source(src)   # held until the ioctl returned
        if cipher == AES_CIPHER_GCM:
            params = GCM_PARAMS.pack(key_id1, tag_or_tweak, iv, aad_len, aligned_aad_len, 1)
            ioctl = AES_GCM_IOCTL
        else:
            params = XTS_PARAMS.pack(dul, key_id1, key_id2, tag_or_tweak)
            ioctl = AES_XTS_IOCTL
        dst, dst_addr = _destination(n)
        arg = bytearray(AES_CMD.size)
        AES_IN.pack_into(arg, 0, AES_CMD.size, 0, 0, 0, 0, op, cipher, src_addr, n, dst_addr, n, AES_FRAME_TYPE,
                         session_id, short_app_id, params)
        try:
            fcntl.ioctl(self._fd, ioctl, arg, True)
        except OSError as exc:
            raise _ioctl_error(exc, f"{self._path}: {what}", AES_OUT.unpack_from(arg, AES_OUT_AT)[3]) from exc
        result, cmd_spec, byte_count, ext, fips, iv_fw = AES_OUT.unpack_from(arg, AES_OUT_AT)
        if result or ext:
            raise AesError(f"{self._path}: {what}", result, ext, EXTENDED_STATUS.get(ext, "device"))
        if type(dst) is bytes and aligned_aad_len == 0 and byte_count == n:
            data = dst     # the output filled the whole destination: it is the result
        else:
            data = ctypes.string_at(dst_addr + aligned_aad_len, max(byte_count - aligned_aad_len, 0))
        return data, cmd_spec, iv_fw, bool(fips)

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
