"""The backend's trace through a real ``pyhsm serve --trace`` (real link, real identity): every DDI op
sent over the socket transport appears decoded; real credentials, PINs, BK3 and AES/HMAC message
contents never appear; ``pyhsm trace`` filters it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.schemas import SessionKind
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve
from tests.tools.debug_samples import SECRET_MARK, sample

PYHSM = Path(sys.executable).parent / "pyhsm"
APP_ID = bytes.fromhex("a1d0a1d0a1d0a1d0a1d0a1d0a1d0a1d0")
PIN = b"trace-pin-0a1b2c"
BK3 = bytes.fromhex("b3") * 48
AES_PLAINTEXT = bytes.fromhex("9a1e7e") * 16   # 48 bytes, a multiple of the block size


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("trace")
    sock, trace = tmp / "hsm.sock", tmp / "trace.jsonl"
    proc = subprocess.Popen([str(PYHSM), "--log-level", "warning", "serve", "--socket", str(sock),
                             "--state", str(tmp / "state"), "--trace", str(trace)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("ready"), "pyhsm serve did not start"
        transport = SocketTransport(sock, serial="TRACE-0001")
        client = HsmClient(transport)
        client.get_api_rev()
        client.get_device_info()
        client.establish_credential(APP_ID, PIN, client.init_bk3(BK3),
                                    ec.generate_private_key(ec.SECP384R1()))
        opened = client.open_session(APP_ID, PIN)
        key = client.ecc_generate_key_pair(EccCurve.P384)
        client.ecc_sign(key.private_key_id, bytes(48))
        client.attest_key(key.private_key_id, b"trace")
        aes = client.aes_generate_key(AesKeySize.Aes256)
        client.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, AES_PLAINTEXT, bytes(16))
        # Every op once more with schema-built values (most fail in the HSM: only decoding matters)
        for spec in OPS.values():
            in_session = spec.kind in (SessionKind.IN_SESSION, SessionKind.CLOSE)
            payload = envelope.encode_request(spec.code, spec.request, sample(spec.request),
                                              rev=envelope.rev(1, 0),
                                              sess_id=opened.sess_id if in_session else None)
            if spec.kind not in (SessionKind.OPEN, SessionKind.CLOSE):
                transport.submit(payload, link.SessionFlags(link.SessionOp(int(spec.kind)), in_session),
                                 opened.sess_id if in_session else 0)
        client.close_session()
        transport.close()
    finally:
        proc.terminate()
        proc.wait(20)
    text = trace.read_text()
    return {"path": trace, "text": text, "records": [json.loads(line) for line in text.splitlines()],
            "pin": PIN, "seed": opened.seed}


def test_every_op_appears_decoded(traced: dict) -> None:
    ops = {r["op"] for r in traced["records"] if r["event"] == "command"}
    assert ops >= {spec.name for spec in OPS.values()}
    for record in traced["records"]:
        assert "undecodable" not in record["request"], record
        assert record["device"] == "TRACE-0001" and record["queue"] == 0  # the socket transport's qid
        assert record["latency_us"] > 0


def test_real_flow_records_statuses_and_sessions(traced: dict) -> None:
    sign = next(r for r in traced["records"] if r["op"] == "EccSign")
    assert sign["status"] == 0 and sign["ddi_status"] == "Success"
    assert sign["session_op"] == "IN_SESSION" and sign["session_id"] == sign["request"]["sess_id"]
    assert len(bytes.fromhex(sign["response"]["data"]["signature"])) == 96
    opened = next(r for r in traced["records"] if r["op"] == "OpenSession")
    assert opened["response"]["data"]["bmk_session"]["redacted"] > 0
    assert all("redacted" in v for v in opened["request"]["data"]["encrypted_credential"].values())
    assert any(r["ddi_status"] != "Success" for r in traced["records"] if "ddi_status" in r)


def test_no_secret_reaches_the_trace(traced: dict) -> None:
    text = traced["text"]
    for secret in (traced["pin"], BK3, AES_PLAINTEXT, traced["seed"], SECRET_MARK):
        assert secret.hex()[:16] not in text
        assert secret.hex()[-16:] not in text
    assert '"redacted"' in text


def _cli(*args: str) -> list[str]:
    out = subprocess.run([str(PYHSM), "trace", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_trace_command_filters(traced: dict) -> None:
    path = str(traced["path"])
    assert len(_cli(path, "--json")) == len(traced["records"])
    signs = [json.loads(line) for line in _cli(path, "--json", "--op", "EccSign")]
    assert signs and all(r["op"] == "EccSign" for r in signs)
    errors = [json.loads(line) for line in _cli(path, "--json", "--errors-only")]
    assert errors and all(r["status"] or r.get("ddi_status") != "Success" for r in errors)
    session = signs[0]["session_id"]
    assert all(json.loads(line)["session_id"] == session
               for line in _cli(path, "--json", "--session", str(session)))
    assert _cli(path, "--json", "--queue", "admin") == []
    assert _cli(path, "--since", "1h") and _cli(path, "--since", "2999-01-01T00:00:00") == []
    text = _cli(path, "--op", "GetApiRev")
    assert text and "op=GetApiRev" in text[0]


def test_trace_command_follows_a_growing_file(traced: dict, tmp_path: Path) -> None:
    live = tmp_path / "live.jsonl"
    live.write_text("")
    proc = subprocess.Popen([str(PYHSM), "trace", "--follow", "--json", str(live)],
                            stdout=subprocess.PIPE, text=True)
    try:
        with live.open("a") as out:
            out.write(json.dumps(traced["records"][0]) + "\n")
        first = proc.stdout.readline()
        assert json.loads(first) == traced["records"][0]
    finally:
        proc.terminate()
        proc.wait(10)
