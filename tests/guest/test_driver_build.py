"""The guest driver builds warning-free against the pinned guest kernel's headers, binds 1414:C003,
and its uapi header agrees with the Python ioctl transport (runs on the host, no VM)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyhsm.client import aes
from pyhsm.client import ioctl_transport as it

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "guest" / "driver"
KVER = "6.1.0-56-amd64"
KDIR = Path(f"/usr/src/linux-headers-{KVER}")
SOURCES = [p for p in DRIVER.iterdir() if p.suffix in (".c", ".h") or p.name in ("Kbuild", "Makefile")]

needs_headers = pytest.mark.skipif(
    not (KDIR / "Makefile").exists(),
    reason=f"{KDIR} missing: apt-get install linux-headers-{KVER}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A W=1 build of a copy of guest/driver; returns (module path, build output)."""
    work = tmp_path_factory.mktemp("azihsm-build")
    for src in SOURCES:
        shutil.copy(src, work)
    proc = subprocess.run(["make", "-C", str(work), f"KVER={KVER}", "W=1"],
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return work / "azihsm.ko", output


def modinfo(ko: Path, field: str) -> list[str]:
    out = subprocess.run(["modinfo", "-F", field, str(ko)], capture_output=True, text=True,
                         check=True).stdout
    return out.split("\n")[:-1]


@needs_headers
def test_build_is_warning_free(built: tuple[Path, str]) -> None:
    ko, output = built
    assert ko.is_file()
    noisy = [line for line in output.splitlines() if "warning" in line.lower()]
    assert noisy == []


@needs_headers
def test_module_binds_1414_c003_for_the_pinned_kernel(built: tuple[Path, str]) -> None:
    ko, _ = built
    assert modinfo(ko, "alias") == ["pci:v00001414d0000C003sv*sd*bc*sc*i*"]
    assert modinfo(ko, "vermagic")[0].startswith(f"{KVER} SMP")
    assert modinfo(ko, "license") == ["GPL"]
    assert sorted(modinfo(ko, "parm")) == sorted([
        "num_hsm_slots:Entries per HSM queue (2..4096, default 16) (uint)",
        "num_aes_slots:Entries per AES queue (2..4096, default 16) (uint)",
        "abort_timeout_in_sec:HSM command timeout before a level-1 abort (seconds, min 6) (uint)",
        "pf_res_cnt:Resource count a PF (SR-IOV capable function) sets at probe (1..64) (uint)",
        "poll_us:Microseconds to spin for a command's completion before sleeping (default 0) (uint)",
    ])


LAYOUT_PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include "azihsm_ioctl.h"
#define F(s, m) printf(#s "." #m " %zu\n", offsetof(struct s, m))
int main(void)
{
	printf("generic %zu dev_info %zu reset %zu aes %zu\n", sizeof(struct azihsm_cp_generic_cmd),
	       sizeof(struct azihsm_ctrl_dev_info), sizeof(struct azihsm_reset_device_data),
	       sizeof(struct azihsm_aes_ioctl));
	printf("ioctls %#lx %#lx %#lx %#lx %#lx %#lx\n",
	       (unsigned long)AZIHSM_CTRL_PATH_GENERIC_IOCTL_SESSION,
	       (unsigned long)AZIHSM_CTRL_PATH_GENERIC_IOCTL, (unsigned long)AZIHSM_GET_DEV_INFO_IOCTL,
	       (unsigned long)AZIHSM_IOCTL_RESET_DEVICE, (unsigned long)AZIHSM_AES_DEV_IOCTL_CMD_XTS,
	       (unsigned long)AZIHSM_AES_DEV_IOCTL_CMD_GCM);
	F(azihsm_cp_generic_cmd, in.opc); F(azihsm_cp_generic_cmd, in.src_length);
	F(azihsm_cp_generic_cmd, in.src_buf); F(azihsm_cp_generic_cmd, in.dst_length);
	F(azihsm_cp_generic_cmd, in.dst_buf); F(azihsm_cp_generic_cmd, in.session_flags);
	F(azihsm_cp_generic_cmd, in.session_id); F(azihsm_cp_generic_cmd, out.status);
	F(azihsm_cp_generic_cmd, out.byte_count); F(azihsm_cp_generic_cmd, out.ioctl_extended_status);
	F(azihsm_ctrl_dev_info, serial); F(azihsm_ctrl_dev_info, fw_rev);
	F(azihsm_ctrl_dev_info, driver_rev); F(azihsm_ctrl_dev_info, device_entropy);
	F(azihsm_reset_device_data, abort_type); F(azihsm_reset_device_data, abort_sts);
	F(azihsm_aes_ioctl, op_code); F(azihsm_aes_ioctl, cipher); F(azihsm_aes_ioctl, src_ptr);
	F(azihsm_aes_ioctl, src_len); F(azihsm_aes_ioctl, dst_ptr); F(azihsm_aes_ioctl, dst_len);
	F(azihsm_aes_ioctl, frame_type); F(azihsm_aes_ioctl, session_id);
	F(azihsm_aes_ioctl, short_app_id); F(azihsm_aes_ioctl, xts.data_unit_len);
	F(azihsm_aes_ioctl, xts.key_id1); F(azihsm_aes_ioctl, xts.key_id2); F(azihsm_aes_ioctl, xts.tweak);
	F(azihsm_aes_ioctl, gcm.key_id); F(azihsm_aes_ioctl, gcm.tag); F(azihsm_aes_ioctl, gcm.iv);
	F(azihsm_aes_ioctl, gcm.actual_aad_len); F(azihsm_aes_ioctl, gcm.aligned_aad_len);
	F(azihsm_aes_ioctl, gcm.enable_gcm_workaround); F(azihsm_aes_ioctl, out_ctxt);
	F(azihsm_aes_ioctl, out_result); F(azihsm_aes_ioctl, out_cmd_spec);
	F(azihsm_aes_ioctl, out_byte_count); F(azihsm_aes_ioctl, out_extended_status);
	F(azihsm_aes_ioctl, out_fips_approved); F(azihsm_aes_ioctl, out_iv_from_fw);
	return 0;
}
"""

SPEC_OFFSETS = {  # docs/guest-driver.md, "ioctl ABI"
    "azihsm_cp_generic_cmd.in.opc": 24, "azihsm_cp_generic_cmd.in.src_length": 32,
    "azihsm_cp_generic_cmd.in.src_buf": 40, "azihsm_cp_generic_cmd.in.dst_length": 48,
    "azihsm_cp_generic_cmd.in.dst_buf": 56, "azihsm_cp_generic_cmd.in.session_flags": 64,
    "azihsm_cp_generic_cmd.in.session_id": 66, "azihsm_cp_generic_cmd.out.status": 96,
    "azihsm_cp_generic_cmd.out.byte_count": 100,
    "azihsm_cp_generic_cmd.out.ioctl_extended_status": 104,
    "azihsm_ctrl_dev_info.serial": 39, "azihsm_ctrl_dev_info.fw_rev": 77,
    "azihsm_ctrl_dev_info.driver_rev": 110, "azihsm_ctrl_dev_info.device_entropy": 143,
    "azihsm_reset_device_data.abort_type": 24, "azihsm_reset_device_data.abort_sts": 108,
}
AES_OFFSETS = {  # docs/guest-driver.md, "AES fast path"
    "op_code": 24, "cipher": 25, "src_ptr": 32, "src_len": 40, "dst_ptr": 48, "dst_len": 56,
    "frame_type": 64, "session_id": 66, "short_app_id": 68, "xts.data_unit_len": 72, "xts.key_id1": 76,
    "xts.key_id2": 80, "xts.tweak": 84, "gcm.key_id": 72, "gcm.tag": 76, "gcm.iv": 92,
    "gcm.actual_aad_len": 104, "gcm.aligned_aad_len": 108, "gcm.enable_gcm_workaround": 112,
    "out_ctxt": 240, "out_result": 248, "out_cmd_spec": 252, "out_byte_count": 268,
    "out_extended_status": 272, "out_fips_approved": 276, "out_iv_from_fw": 280,
}
SPEC_OFFSETS.update({f"azihsm_aes_ioctl.{name}": off for name, off in AES_OFFSETS.items()})


def test_uapi_header_matches_spec_and_python_transport(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing: apt-get install build-essential")
    (tmp_path / "probe.c").write_text(LAYOUT_PROBE)
    exe = tmp_path / "probe"
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{DRIVER}", "-o", str(exe), str(tmp_path / "probe.c")],
                   check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    sizes = lines[0].split()
    assert sizes == ["generic", "112", "dev_info", "176", "reset", "272", "aes", "400"]
    assert it.GENERIC_CMD.size == 112 and it.RESET.size == 272 and it.DEV_INFO_SIZE == 176
    assert it.DEV_INFO.size == SPEC_OFFSETS["azihsm_ctrl_dev_info.device_entropy"] + 32
    ioctls = [int(x, 16) for x in lines[1].split()[1:]]
    assert ioctls == [it.HSM_CMD_IOCTL, it.LEGACY_HSM_CMD_IOCTL, it.DEV_INFO_IOCTL, it.RESET_IOCTL,
                      it.AES_XTS_IOCTL, it.AES_GCM_IOCTL]
    assert ioctls == [0xC0704203, 0xC0704202, 0xC0B04204, 0xC1104206, 0xC190420B, 0xC190420C]
    offsets = {name: int(off) for name, off in (line.split() for line in lines[2:])}
    assert offsets == SPEC_OFFSETS


def test_python_generic_cmd_packs_fields_at_spec_offsets() -> None:
    raw = it.GENERIC_CMD.pack(112, 0, 0, 0, 0x1122, 0x3FF, 0, 0, 100, 0xAAAA0000, 8192,
                              0xBBBB0000, 0x07, 0x4242, 0, 0, 0, 0)
    assert int.from_bytes(raw[0:4], "little") == 112
    assert int.from_bytes(raw[24:26], "little") == 0x3FF
    assert int.from_bytes(raw[32:36], "little") == 100
    assert int.from_bytes(raw[40:48], "little") == 0xAAAA0000
    assert int.from_bytes(raw[48:52], "little") == 8192
    assert int.from_bytes(raw[56:64], "little") == 0xBBBB0000
    assert raw[64] == 0x07
    assert int.from_bytes(raw[66:68], "little") == 0x4242


def test_python_aes_cmd_packs_fields_at_spec_offsets() -> None:
    gcm = it.GCM_PARAMS.pack(0x0102, b"T" * 16, b"I" * 12, 20, 32, 1)
    raw = it.AES_CMD.pack(400, 0, 0, 0, 0x55, 1, 0, 0xAAAA0000, 100, 0xBBBB0000, 132, 1, 0x4242, 0x17,
                          gcm, 0, 0, b"", 0, 0, 0, b"")
    assert len(raw) == 400
    le = lambda a, b: int.from_bytes(raw[a:b], "little")  # noqa: E731
    assert (raw[24], raw[25], le(32, 40), le(40, 44), le(48, 56), le(56, 60)) == \
        (1, 0, 0xAAAA0000, 100, 0xBBBB0000, 132)
    assert (raw[64], le(66, 68), raw[68]) == (1, 0x4242, 0x17)
    assert le(72, 76) == 0x0102 and raw[76:92] == b"T" * 16 and raw[92:104] == b"I" * 12
    assert (le(104, 108), le(108, 112), raw[112]) == (20, 32, 1)
    xts = it.XTS_PARAMS.pack(1, 7, 8, b"W" * 16)
    assert (xts[0:2], xts[4:8], xts[8:12], xts[12:28]) == \
        (b"\x01\x00", b"\x07\0\0\0", b"\x08\0\0\0", b"W" * 16)
    out = bytearray(raw)
    out[248:252] = (0x720).to_bytes(4, "little")
    out[252:268] = b"G" * 16
    out[268:272] = (77).to_bytes(4, "little")
    out[272:276] = (0x4D).to_bytes(4, "little")
    out[276] = 1
    out[280:292] = b"V" * 12
    *_, result, cmd_spec, byte_count, ext, fips, iv = it.AES_CMD.unpack(out)
    assert (result, cmd_spec, byte_count, ext, fips, iv) == (0x720, b"G" * 16, 77, 0x4D, 1, b"V" * 12)
    assert it.AesError("x", result, ext).ddi_status == 0x0870004D


def test_align_aad_follows_the_sdk_rule() -> None:
    assert aes.align_aad(b"") == b""
    assert aes.align_aad(b"a" * 32) == b"a" * 32
    assert aes.align_aad(b"a" * 20) == b"a" * 20 + bytes(12)
    assert aes.align_aad(b"a" * 45) == bytes(16) + b"a" * 45 + bytes(3)


def test_transport_without_device_raises_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        it.IoctlTransport("/dev/azihsm-does-not-exist")
    with pytest.raises(FileNotFoundError):
        it.device_info("/dev/azihsm-does-not-exist")


def test_ioctl_error_message_names_extended_status() -> None:
    err = it._ioctl_error(OSError(11, "x"), "/dev/azihsm0: HSM command", 0x04000002)
    assert err.errno == 11
    assert "0x4000002" in str(err) and "command aborted" in str(err)


def test_side_band_reconstructs_open_and_close() -> None:
    from pyhsm.protocol.ddi import envelope
    from pyhsm.protocol.link import SessionFlags, SessionOp

    opened = envelope.encode_response(1, 0, sess_id=7)
    flags, sid = it.side_band(SessionFlags(SessionOp.OPEN), 0, 0, opened)
    assert (flags.op, flags.id_valid, sid) == (SessionOp.OPEN, True, 7)
    refused = envelope.encode_response(1, 5, sess_id=7)
    flags, sid = it.side_band(SessionFlags(SessionOp.OPEN), 0, 0, refused)
    assert (flags.id_valid, sid) == (False, 0)
    flags, _ = it.side_band(SessionFlags(SessionOp.OPEN), 0, 0, b"not mbor")
    assert not flags.id_valid
    flags, sid = it.side_band(SessionFlags(SessionOp.CLOSE, id_valid=True), 7, 0, b"")
    assert flags.safe_to_close and flags.id_valid and sid == 7
    sent = SessionFlags(SessionOp.IN_SESSION, id_valid=True)
    assert it.side_band(sent, 9, 0, b"") == (sent, 9)
