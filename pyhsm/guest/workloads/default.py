"""The default workload: the HSM from guest userspace through the driver's ioctl, end to end.

Steps: driver bound, GetApiRev, GetDeviceInfo, the serial mailbox (``serial_mailbox``: SPDM attestation,
GetApiRev on both paths, both mailboxes one device), establish credential, open session, generate a P-384
key, sign a SHA-384 digest (the host verifies the signature), attest the key, the AES fast path
(``aes.STEPS``: bulk keys, GCM and XTS through the driver's AES ioctls checked against ``cryptography``,
refusals, throughput), close the session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

from pyhsm.client import credential
from pyhsm.guest.workloads import Context, Step, Workload, aes, serial_mailbox
from pyhsm.guest.workloads.device import (
    POLL_PARAMETER,
    POLL_US,
    close_client,
    driver_bound,
    driver_polling,
    open_client,
)
from pyhsm.protocol.ddi.types import EccCurve


def _text(value: Any) -> Any:
    """A JSON-friendly rendering of a client result."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "_asdict"):
        value = value._asdict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def get_api_rev(context: Context) -> dict[str, Any]:
    return {"api_rev": _text(open_client(context).get_api_rev())}


def get_api_rev_polled(context: Context) -> dict[str, Any]:
    """GetApiRev with the driver spinning for completions (docs/guest-driver.md, "Polling"): for
    POLL_US, which catches the answer while spinning, and for 1 µs, which gives up and sleeps."""
    seen = {}
    for poll_us in (POLL_US, 1):
        with driver_polling(poll_us):
            if int(POLL_PARAMETER.read_text()) != poll_us:
                raise AssertionError(f"poll_us reads {POLL_PARAMETER.read_text().strip()} after writing {poll_us}")
            seen[poll_us] = _text(open_client(context).get_api_rev())
    if int(POLL_PARAMETER.read_text()) != 0:
        raise AssertionError("poll_us was not set back to 0")
    return {"api_rev": seen}


def get_device_info(context: Context) -> dict[str, Any]:
    return {"device_info": _text(open_client(context).get_device_info())}


def establish_credential(context: Context) -> dict[str, Any]:
    return credential.ensure_established(open_client(context))


def generate_key(context: Context) -> dict[str, Any]:
    key = open_client(context).ecc_generate_key_pair(EccCurve.P384)
    context["key_id"], context["public_der"] = key.private_key_id, key.pub_key.der
    return {"key_id": key.private_key_id}


def sign_digest(context: Context) -> dict[str, Any]:
    digest = hashlib.sha384(b"pyhsm default workload " + os.urandom(16)).digest()
    signature = open_client(context).ecc_sign(context["key_id"], digest)
    return {"digest": digest.hex(), "signature": bytes(signature).hex(),
            "public_key_der": bytes(context["public_der"]).hex()}


def attest_key(context: Context) -> dict[str, Any]:
    report = open_client(context).attest_key(context["key_id"], os.urandom(128))
    return {"report_bytes": len(report)}


def close_session(context: Context) -> dict[str, Any]:
    open_client(context).close_session()
    return {}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("GetApiRev", get_api_rev),
           Step("GetApiRev, driver polling", get_api_rev_polled),
           Step("GetDeviceInfo", get_device_info), *serial_mailbox.STEPS,
           Step("establish credential", establish_credential),
           Step("open session", aes.open_session), Step("generate P-384 key", generate_key),
           Step("sign digest", sign_digest), Step("attest key", attest_key), *aes.STEPS,
           Step("close session", close_session)),
    cleanup=close_client)
