"""Introspection parts without a guest: the kernel profile from the real guest vmlinuz (export table
and BTF), the device's queue objects, SQE/CQE decoding and ring states over a synthetic memory
image."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.tools.inspect import profile, rings
from pyhsm.tools.inspect.memory import PhysicalMemory


def test_profile_from_the_guest_kernel_image() -> None:
    if not profile.default_vmlinuz().exists():
        pytest.fail(f"{profile.default_vmlinuz()} is missing: build the guest images (make images)")
    prof = profile.load()
    symbols = {k: int(v, 16) for k, v in prof["symbols"].items()}
    assert set(symbols) == {"init_task", "page_offset_base", "phys_base", "printk_rb_static"}
    assert all(0xFFFFFFFF81000000 <= v < 0xFFFFFFFFC0000000 for v in symbols.values())
    off = prof["offsets"]
    assert off["task_struct.tasks"] < off["task_struct.pid"] < off["task_struct.comm"]
    assert off["task_struct.tgid"] == off["task_struct.pid"] + 4
    assert off["prb_desc.text_blk_lpos.next"] == off["prb_desc.text_blk_lpos.begin"] + 8
    assert prof["sizes"]["prb_desc"] == 24


def test_load_queues() -> None:
    """The ``queues`` property as qom-get returns it (schema: docs/device.md, Properties)."""
    items = [{"kind": "cq", "qid": 1, "format": "hsm", "base": 0x6B71000, "size": 16, "head": 14,
              "tail": 14, "phase": 1, "ien": True, "vector": 1, "held": 0},
             {"kind": "sq", "qid": 1, "format": "hsm", "base": 0x6B72000, "size": 16, "head": 3,
              "tail": 5, "cqid": 1, "inflight": 2},
             {"kind": "cq", "qid": 256, "format": "aes", "base": 0x6B73000, "size": 8, "head": 0,
              "tail": 0, "phase": 1, "ien": True, "vector": 16, "held": 0}]
    cq, sq, aes = rings.load_queues(items)
    assert (cq.kind, cq.qid, cq.base, cq.extra["phase"], cq.entry_size) == ("cq", 1, 0x6B71000, 1, 16)
    assert (sq.kind, sq.head, sq.tail, sq.extra["cqid"], sq.extra["inflight"]) == ("sq", 3, 5, 1, 2)
    assert sq.entry_size == 64 and aes.entry_size == 64 and aes.extra["format"] == "aes"
    with pytest.raises(ValueError, match="predates"):   # the text property of older devices
        rings.load_queues("sq 1: base=0x6b72000 size=16 head=3 tail=5 cq=1\n")


def _sqe(cid: int, src_len: int, src: int, flags: int, session: int) -> bytes:
    raw = bytearray(64)
    struct.pack_into("<IIQQI", raw, 0, cid << 16, src_len, src, 0, 8192)
    struct.pack_into("<QQ", raw, 28, 0x9000, 0)
    raw[44] = flags
    struct.pack_into("<H", raw, 48, session)
    return bytes(raw)


def test_ring_states_and_request_decode(tmp_path: Path) -> None:
    image = bytearray(64 << 10)
    sq_base, cq_base, page = 0x1000, 0x2000, 0x3000
    request = envelope.encode_request(1062, BY_NAME["EccSign"].request,
                                      BY_NAME["EccSign"].request(key_id=3, digest=bytes(48),
                                                                 digest_algo=2),
                                      rev=envelope.rev(1, 0), sess_id=5)
    image[page:page + len(request)] = request
    for slot in range(4):      # 0, 1 done; 2 fetched, waiting; 3 not fetched
        image[sq_base + 64 * slot:sq_base + 64 * slot + 64] = _sqe(slot, len(request), page, 3 | 4, 5)
    for slot in range(2):
        cqe = bytearray(16)
        struct.pack_into("<HBxHBxHHHH", cqe, 0, 40, 3 | 4, 5, 0, slot + 1, 1, slot, 1)
        image[cq_base + 16 * slot:cq_base + 16 * slot + 16] = cqe
    path = tmp_path / "ram.raw"
    path.write_bytes(image)
    queues = [rings.Queue("sq", 1, sq_base, 8, 3, 4, {"format": "hsm", "cqid": 1, "inflight": 1}),
              rings.Queue("cq", 1, cq_base, 8, 2, 2, {"format": "hsm", "phase": 1})]
    with PhysicalMemory(path) as memory:
        cq, sq = rings.decode_rings(memory, queues)
    assert [e["state"] for e in sq["entries"]] == ["done", "done", "in flight", "submitted"]
    waiting = sq["entries"][2]
    assert waiting["cid"] == 2 and waiting["session_op"] == "IN_SESSION" and waiting["session_id"] == 5
    assert waiting["request"]["op"] == "EccSign" and waiting["request"]["data"]["key_id"] == 3
    assert "request" not in sq["entries"][0]          # done: its pages may be reused
    assert [(e["cid"], e["byte_count"], e["status"]) for e in cq["entries"]] == [(0, 40, 0), (1, 40, 0)]


def test_second_lap_completions_with_phase_0_and_cid_0_are_entries(tmp_path: Path) -> None:
    """On an even lap the device writes P=0; with CID 0 and status 0 only the SQ id and byte count
    tell such a CQE from a never-written slot."""
    image = bytearray(8 << 10)
    cq_base, size = 0x1000, 4
    for slot in range(size):   # lap 1 filled every slot (P=1); lap 2 rewrote slots 0-1 (P=0)
        phase = 0 if slot < 2 else 1
        struct.pack_into("<HBxHBxHHHH", image, cq_base + 16 * slot, 10 + slot, 0, 0, 0, 1, 1, 0, phase)
    path = tmp_path / "ram.raw"
    path.write_bytes(image)
    with PhysicalMemory(path) as memory:
        (cq,) = rings.decode_rings(memory, [rings.Queue("cq", 1, cq_base, size, 2, 2,
                                                        {"format": "hsm", "phase": 0})])
    assert [e["byte_count"] for e in cq["entries"]] == [12, 13, 10, 11]   # oldest first


def test_aes_rings_use_their_own_entry_sizes(tmp_path: Path) -> None:
    """AES queues hold 128-byte SQEs and 64-byte CQEs: each entry is read whole and shown raw."""
    image = bytearray(8 << 10)
    sq_base, cq_base = 0x1000, 0x1800
    for slot in range(2):
        image[sq_base + 128 * slot + 6] = slot + 1          # CID (SQE bytes 6-7)
        image[cq_base + 64 * slot + 2] = slot + 1           # CID (CQE bytes 2-3)
    path = tmp_path / "ram.raw"
    path.write_bytes(image)
    queues = [rings.Queue("sq", 256, sq_base, 4, 2, 2, {"format": "aes", "cqid": 256, "inflight": 0}),
              rings.Queue("cq", 256, cq_base, 4, 2, 2, {"format": "aes", "phase": 1})]
    with PhysicalMemory(path) as memory:
        cq, sq = rings.decode_rings(memory, queues)
    assert [len(bytes.fromhex(e["raw"])) for e in sq["entries"]] == [128, 128]
    assert [len(bytes.fromhex(e["raw"])) for e in cq["entries"]] == [64, 64]
    assert [e["state"] for e in sq["entries"]] == ["done", "done"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "pyhsm"), "--log-level", "error", *args],
                          capture_output=True, text=True, timeout=60)


def test_inspect_refuses_memory_without_the_profiled_kernel(tmp_path: Path) -> None:
    image = tmp_path / "zero.raw"
    with open(image, "wb") as out:
        out.truncate(64 << 20)      # zeros where init_task should be
    done = _cli("inspect", str(image), "--ps")
    assert done.returncode == 1 and "nokaslr" in done.stderr and "Traceback" not in done.stderr
    done = _cli("inspect", str(tmp_path / "missing"), "--dmesg")
    assert done.returncode == 1 and "No such file" in done.stderr


def test_qmp_command_reports_an_unreachable_socket(tmp_path: Path) -> None:
    done = _cli("qmp", str(tmp_path / "qmp.sock"), "query-status")
    assert done.returncode == 1 and "pyhsm qmp: " in done.stderr and "Traceback" not in done.stderr
    assert _cli("qmp", str(tmp_path), "query-status", "novalue").returncode == 1


def test_debug_run_arguments(tmp_path: Path) -> None:
    from pyhsm.tools.inspect.run_debug import DebugRun
    debug = DebugRun(tmp_path, 512, memory_file=True, gdb_port=1234)
    args = " ".join(debug.qemu_args())
    assert f"mem-path={tmp_path}/guest.mem,share=on" in args and "size=512M" in args
    assert "-gdb tcp:127.0.0.1:1234" in args and f"unix:{tmp_path}/qmp-tools.sock" in args
    assert "-trace enable=azihsm_*" in args and debug.kernel_cmdline == "nokaslr"
    assert debug.backend_args() == ("--trace", f"{tmp_path}/trace.jsonl",
                                    "--secrets-out", f"{tmp_path}/secrets.jsonl")
    plain = DebugRun(tmp_path, 512, memory_file=False)
    assert plain.backend_args() == () and plain.kernel_cmdline == ""
    assert plain.qemu_args() == ("-qmp", f"unix:{tmp_path}/qmp-tools.sock,server=on,wait=off")
