"""The AES fast path from guest userspace: bulk keys and GCM / XTS through the driver's AES ioctls.

Steps (they need an open session on ``open_client(context)`` and ``context["short_app_id"]``):
``bulk_keys`` makes AesGenerateKey bulk keys (one GCM, two XTS) and imports known ones with RsaUnwrap,
so that the device's output can be checked against ``cryptography`` in the guest; ``gcm_round_trips`` and
``xts_round_trips`` run several sizes through the ioctls; ``refusals`` checks a tag mismatch, a wrong key
type and a driver-side session mismatch; ``throughput`` measures 4 KiB and 1 MiB operations against the
guest's own ``cryptography`` rate and splits one 4 KiB call's time; ``delete_bulk_keys`` removes the keys again. The ``aes`` workload adds two
concurrent processes, each on its own descriptor and session, and checks that a command's completion
interrupt arrives on the CPU that submitted it.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

from pyhsm.client import credential
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import (
    POLL_US,
    close_client,
    driver_bound,
    driver_polling,
    open_client,
    open_new_client,
)
from pyhsm.protocol.layout import AES_FIRST_VECTOR

GCM_SIZES = (1, 15, 16, 100, 4096, 4097, 65000)
GCM_AADS = (b"", b"A" * 20, b"B" * 32, b"C" * 45)
XTS_SIZES = (16, 48, 512, 4096, 8192, 65536)
BENCH_SIZES = (4096, 1 << 20)     # 4 KiB and the largest buffer the interface takes (1 MiB per direction)
BENCH_SECONDS = 1.0
SLICES, SLICE_S = 3, 0.5          # alternating fast-path / polled fast-path / in-guest slices per figure
BREAKDOWN_CALLS = 200
TAG_MISMATCH = {0x0870004D, 0x08700026}   # AesGcmDecryptTagDoesNotMatch; AesDecryptFailed (Virtual)
INVALID_KEY_TYPE = 0x0870000F


def _ids(context: Context) -> dict[str, int]:
    client = open_client(context)
    return {"session_id": client.session_id, "short_app_id": context["short_app_id"]}


def _wrap(kek_der: bytes, target: bytes) -> bytes:
    """``target`` wrapped for RsaUnwrap: RSA-OAEP(SHA-256) of a fresh AES key, then AES key wrap."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
    public = serialization.load_der_public_key(kek_der)
    kwk = os.urandom(32)
    head = public.encrypt(kwk, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    return head + aes_key_wrap_with_padding(kwk, target)


def open_session(context: Context) -> dict[str, Any]:
    opened = credential.open_session(open_client(context))
    context["short_app_id"] = opened.short_app_id
    return {"session_id": opened.sess_id, "short_app_id": opened.short_app_id}


def bulk_keys(context: Context) -> dict[str, Any]:
    from pyhsm.client import Usage
    from pyhsm.protocol.ddi.types import AesKeySize, KeyClass
    client = open_client(context)
    made = {"gcm": client.aes_generate_key(AesKeySize.AesGcmBulk256),
            "xts1": client.aes_generate_key(AesKeySize.AesXtsBulk256),
            "xts2": client.aes_generate_key(AesKeySize.AesXtsBulk256)}
    kek = client.get_unwrapping_key()
    known = {"gcm": (KeyClass.AesGcmBulk, os.urandom(32)), "xts1": (KeyClass.AesXtsBulk, os.urandom(32)),
             "xts2": (KeyClass.AesXtsBulk, os.urandom(32))}
    imported = {name: client.rsa_unwrap(kek.key_id, _wrap(bytes(kek.pub_key.der), key), cls,
                                        Usage.ENCRYPT_DECRYPT)
                for name, (cls, key) in known.items()}
    context["bulk"] = {name: r.bulk_key_id for name, r in made.items()}
    context["known"] = {name: (r.bulk_key_id, known[name][1]) for name, r in imported.items()}
    context["key_ids"] = [r.key_id for r in (*made.values(), *imported.values())]
    return {"generated": context["bulk"], "imported": {n: k for n, (k, _) in context["known"].items()}}


def _xts_reference(key: bytes, tweak0: int, data: bytes, unit: int | None, decrypt: bool) -> bytes:
    """AES-256-XTS as the device does it: unit i uses tweak (tweak0 + i) as a 16-byte LE block."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    unit = unit or len(data)
    out = bytearray()
    for i in range(0, len(data), unit):
        cipher = Cipher(algorithms.AES(key), modes.XTS((tweak0 + i // unit).to_bytes(16, "little")))
        op = cipher.decryptor() if decrypt else cipher.encryptor()
        out += op.update(data[i:i + unit]) + op.finalize()
    return bytes(out)


def gcm_round_trips(context: Context) -> dict[str, Any]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    t, ids = open_client(context).transport, _ids(context)
    known_id, key = context["known"]["gcm"]
    done = []
    for n, size in enumerate(GCM_SIZES):
        aad, pt, iv = GCM_AADS[n % len(GCM_AADS)], os.urandom(size), os.urandom(12)
        enc = t.aes_gcm_encrypt(known_id, iv, pt, aad, **ids)
        expected = AESGCM(key).encrypt(iv, pt, aad or None)
        if enc.data + enc.tag != expected:
            raise AssertionError(f"GCM {size} B (AAD {len(aad)}): ciphertext/tag differ from cryptography")
        if not enc.fips_approved:
            raise AssertionError("AesGcmBulk256 key not reported FIPS approved")
        back = t.aes_gcm_decrypt(known_id, iv, enc.data, enc.tag, aad, **ids).data
        if back != pt:
            raise AssertionError(f"GCM {size} B: decrypt did not give the plaintext back")
        local = AESGCM(key).encrypt(iv, pt, aad or None)   # and the device decrypts cryptography's output
        if t.aes_gcm_decrypt(known_id, iv, local[:-16], local[-16:], aad, **ids).data != pt:
            raise AssertionError(f"GCM {size} B: device decrypt of cryptography's ciphertext differs")
        gen = t.aes_gcm_encrypt(context["bulk"]["gcm"], iv, pt, aad, **ids)
        if t.aes_gcm_decrypt(context["bulk"]["gcm"], iv, gen.data, gen.tag, aad, **ids).data != pt:
            raise AssertionError(f"GCM {size} B: generated-key round trip failed")
        done.append(f"{size}/{len(aad)}")
    return {"sizes_data_aad": done}


def xts_round_trips(context: Context) -> dict[str, Any]:
    t, ids = open_client(context).transport, _ids(context)
    (id1, k1), (id2, k2) = context["known"]["xts1"], context["known"]["xts2"]
    done = []
    for size in XTS_SIZES:
        for unit in (None, 512):
            if unit and size % unit:
                continue
            data, tweak0 = os.urandom(size), int.from_bytes(os.urandom(6), "little")
            tweak = tweak0.to_bytes(16, "little")
            ct = t.aes_xts_encrypt(id1, id2, tweak, data, data_unit=unit, **ids)
            if ct != _xts_reference(k1 + k2, tweak0, data, unit, False):
                raise AssertionError(f"XTS {size} B unit {unit}: ciphertext differs from cryptography")
            if t.aes_xts_decrypt(id1, id2, tweak, ct, data_unit=unit, **ids) != data:
                raise AssertionError(f"XTS {size} B unit {unit}: decrypt did not give the data back")
            g1, g2 = context["bulk"]["xts1"], context["bulk"]["xts2"]
            gct = t.aes_xts_encrypt(g1, g2, tweak, data, data_unit=unit, **ids)
            if gct == data or t.aes_xts_decrypt(g1, g2, tweak, gct, data_unit=unit, **ids) != data:
                raise AssertionError(f"XTS {size} B unit {unit}: generated-key round trip failed")
            done.append(f"{size}/{unit or 'whole'}")
    return {"sizes_unit": done}


def refusals(context: Context) -> dict[str, Any]:
    from pyhsm.client.aes import AesError
    t, ids = open_client(context).transport, _ids(context)
    known_id, _ = context["known"]["gcm"]
    iv, pt = os.urandom(12), os.urandom(100)
    enc = t.aes_gcm_encrypt(known_id, iv, pt, b"hdr", **ids)
    seen = {}
    cases = {
        "tag mismatch": lambda: t.aes_gcm_decrypt(known_id, iv, enc.data, bytes([enc.tag[0] ^ 1]) + enc.tag[1:],
                                                  b"hdr", **ids),
        "wrong key": lambda: t.aes_gcm_decrypt(context["bulk"]["gcm"], iv, enc.data, enc.tag, b"hdr", **ids),
    }
    for name, call in cases.items():
        try:
            call()
        except AesError as exc:
            if exc.ddi_status not in TAG_MISMATCH:
                raise AssertionError(f"{name}: {exc}") from None
            seen[name] = f"0x{exc.ddi_status:08X}"
        else:
            raise AssertionError(f"{name}: decrypt succeeded")
    try:
        t.aes_gcm_encrypt(context["bulk"]["xts1"], iv, pt, **ids)
    except AesError as exc:
        if exc.ddi_status != INVALID_KEY_TYPE:
            raise AssertionError(f"XTS key for GCM: {exc}") from None
        seen["XTS key for GCM"] = f"0x{exc.ddi_status:08X}"
    else:
        raise AssertionError("GCM with an XTS key succeeded")
    try:
        t.aes_gcm_encrypt(known_id, iv, pt, session_id=ids["session_id"] ^ 1, short_app_id=ids["short_app_id"])
    except OSError as exc:
        if exc.errno != errno.EINVAL or "0x6b" not in str(exc):
            raise AssertionError(f"session mismatch: {exc}") from None
        seen["session mismatch"] = "EINVAL, extended status 107"
    else:
        raise AssertionError("the driver accepted another session id")
    return seen


def _rate(fn, nbytes: int, seconds: float = BENCH_SECONDS) -> float:
    """MB/s of ``fn`` (nbytes per call), run for about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return round(calls * nbytes / elapsed / 1e6, 2)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _breakdown(t, call, calls: int = BREAKDOWN_CALLS) -> dict[str, float]:
    """Where one fast-path call's time goes, seen from the guest: the whole call, the part inside the
    ioctl (driver, device, link, backend) and the client's Python around it, in microseconds."""
    import fcntl

    from pyhsm.client import ioctl_transport
    spent = [0.0]

    class _Timed:   # ioctl_transport's fcntl, timing each ioctl
        @staticmethod
        def ioctl(*args):
            started = time.perf_counter()
            try:
                return fcntl.ioctl(*args)
            finally:
                spent[0] += time.perf_counter() - started

    ioctl_transport.fcntl = _Timed   # type: ignore[assignment]
    try:
        started = time.perf_counter()
        for _ in range(calls):
            call()
        total = time.perf_counter() - started
    finally:
        ioctl_transport.fcntl = fcntl
    return {"call_us": round(total / calls * 1e6, 1), "ioctl_us": round(spent[0] / calls * 1e6, 1),
            "client_python_us": round((total - spent[0]) / calls * 1e6, 1)}


def throughput(context: Context) -> dict[str, Any]:
    """Fast path against the guest's own ``cryptography``, GCM and XTS encrypt, at each of BENCH_SIZES:
    SLICES alternating slices of each (the fast path as the driver waits by default, then with its
    poll_us at POLL_US, then in the guest), medians; then the time of one 4 KiB and one 1 MiB GCM call, split,
    and of GetApiRev through the HSM ioctl for comparison."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    t, ids = open_client(context).transport, _ids(context)
    iv, tweak = os.urandom(12), os.urandom(16)
    gcm_id, key = context["known"]["gcm"]
    (x1, k1), (x2, k2) = context["known"]["xts1"], context["known"]["xts2"]
    local_gcm, local_xts = AESGCM(key), Cipher(algorithms.AES(k1 + k2), modes.XTS(tweak))
    out: dict[str, Any] = {"sizes": list(BENCH_SIZES), "slices": SLICES, "slice_s": SLICE_S, "poll_us": POLL_US}
    for size in BENCH_SIZES:
        data = os.urandom(size)
        ops = {"gcm": (lambda: t.aes_gcm_encrypt(gcm_id, iv, data, **ids), lambda: local_gcm.encrypt(iv, data, None)),
               "xts": (lambda: t.aes_xts_encrypt(x1, x2, tweak, data, **ids),
                       lambda: local_xts.encryptor().update(data))}
        for mode, (fast, local) in ops.items():
            slices = []
            for _ in range(SLICES):
                default = _rate(fast, size, SLICE_S)
                with driver_polling(POLL_US):
                    polled = _rate(fast, size, SLICE_S)
                slices.append((default, polled, _rate(local, size, SLICE_S)))
            out[f"{mode}_{size}"] = {"fastpath_MBps": _median([f for f, _, _ in slices]),
                                     "fastpath_polled_MBps": _median([p for _, p, _ in slices]),
                                     "guest_MBps": _median([g for _, _, g in slices]),
                                     "ratio": round(_median([f / g for f, _, g in slices]), 3),
                                     "ratio_polled": round(_median([p / g for _, p, g in slices]), 3)}
    small, large = os.urandom(4096), os.urandom(BENCH_SIZES[-1])

    def small_call() -> None:
        t.aes_gcm_encrypt(gcm_id, iv, small, **ids)

    out["gcm_4096_breakdown"] = _breakdown(t, small_call)
    out[f"gcm_{len(large)}_breakdown"] = _breakdown(t, lambda: t.aes_gcm_encrypt(gcm_id, iv, large, **ids), 10)
    with driver_polling(POLL_US):
        out["gcm_4096_polled_breakdown"] = _breakdown(t, small_call)
    out["hsm_get_api_rev"] = _breakdown(t, open_client(context).get_api_rev)   # the HSM ioctl, for comparison
    return out


def _worker(context: Context, rounds: int) -> None:
    """A child process: its own descriptor and session, GCM and XTS checked against cryptography."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    client = open_new_client(context)
    try:
        opened = credential.open_session(client)
        ids = {"session_id": opened.sess_id, "short_app_id": opened.short_app_id}
        gcm_id, key = context["known"]["gcm"]
        (x1, k1), (x2, k2) = context["known"]["xts1"], context["known"]["xts2"]
        for i in range(rounds):
            pt, iv = os.urandom(1000 + 997 * i), os.urandom(12)
            enc = client.transport.aes_gcm_encrypt(gcm_id, iv, pt, b"worker", **ids)
            if enc.data + enc.tag != AESGCM(key).encrypt(iv, pt, b"worker"):
                raise AssertionError("GCM differs")
            data, tweak0 = os.urandom(4096), i
            ct = client.transport.aes_xts_encrypt(x1, x2, tweak0.to_bytes(16, "little"), data, data_unit=512, **ids)
            if ct != _xts_reference(k1 + k2, tweak0, data, 512, False):
                raise AssertionError("XTS differs")
        client.close_session()
    finally:
        client.transport.close()


def concurrent_processes(context: Context, workers: int = 2, rounds: int = 25) -> dict[str, Any]:
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:   # child: never return into the agent
            code = 0
            try:
                _worker(context, rounds)
            except BaseException as exc:
                print(f"pyhsm-guest: AES worker {os.getpid()} failed: {type(exc).__name__}: {exc}", flush=True)
                code = 1
            os._exit(code)
        pids.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    if any(codes):
        raise AssertionError(f"worker exit statuses {codes}")
    return {"workers": workers, "rounds_each": rounds}


def _aes_interrupts() -> dict[int, int]:
    """Interrupts of the driver's AES-queue vectors (``AES_FIRST_VECTOR`` on, docs/guest-driver.md,
    "Design") so far, summed per CPU (``/proc/interrupts``)."""
    with open("/proc/interrupts") as table:
        cpus = [int(name[3:]) for name in table.readline().split()]
        counts = dict.fromkeys(cpus, 0)
        for line in table:
            words = line.split()
            name = words[-1] if words else ""
            if name.startswith("azihsm_ctrl-") and int(name.rsplit("-", 1)[1]) >= AES_FIRST_VECTOR:
                for cpu, count in zip(cpus, words[1:1 + len(cpus)]):
                    counts[cpu] += int(count)
    return counts


def completions_on_the_submitting_cpu(context: Context, calls: int = 20) -> dict[str, Any]:
    """Pinned to each CPU in turn, ``calls`` GCM commands complete with interrupts on that CPU and no
    other: the driver submits on the CPU's own AES queue, whose vector points at that CPU
    (docs/guest-driver.md, "Design")."""
    t, ids = open_client(context).transport, _ids(context)
    key_id = context["bulk"]["gcm"]
    allowed = os.sched_getaffinity(0)
    seen: dict[str, dict[int, int]] = {}
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            before = _aes_interrupts()
            for _ in range(calls):
                t.aes_gcm_encrypt(key_id, bytes(12), bytes(64), **ids)
            after = _aes_interrupts()
            delta = {c: after[c] - before[c] for c in after}
            seen[f"cpu{cpu}"] = delta
            if delta[cpu] < calls or sum(delta.values()) != delta[cpu]:
                raise AssertionError(f"{calls} commands from CPU {cpu}: AES interrupts per CPU {delta}")
    finally:
        os.sched_setaffinity(0, allowed)
    return {"calls": calls, "interrupts": seen}


def delete_bulk_keys(context: Context) -> dict[str, Any]:
    client = open_client(context)
    for key_id in context.pop("key_ids", []):
        client.delete_key(key_id)
    return {}


def close_session(context: Context) -> dict[str, Any]:
    open_client(context).close_session()
    return {}


# Used by the default workload after its session is open.
STEPS = (Step("AES bulk keys", bulk_keys), Step("AES-GCM round trips", gcm_round_trips),
         Step("AES-XTS round trips", xts_round_trips), Step("AES refusals", refusals),
         Step("AES throughput", throughput), Step("AES delete bulk keys", delete_bulk_keys))

WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound),
           Step("establish credential", lambda c: credential.ensure_established(open_client(c))),
           Step("open session", open_session), *STEPS[:4],
           Step("two concurrent processes", concurrent_processes),
           Step("completions on the submitting CPU", completions_on_the_submitting_cpu), *STEPS[4:],
           Step("close session", close_session)),
    cleanup=close_client)
