"""One VM's half of the two-VM isolation check: a fresh partition and a key only it can see.

Run in two VMs (different HSM serials) on one backend. Each must find its partition unprovisioned,
create a persistent key under the same tag and read back its own public key by that tag.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyhsm.client import credential
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client
from pyhsm.protocol.ddi.types import EccCurve

TAG = 0x5150


def establish(context: Context) -> dict[str, Any]:
    return credential.ensure_established(open_client(context))


def open_session(context: Context) -> dict[str, Any]:
    return {"session_id": credential.open_session(open_client(context)).sess_id}


def create_tagged_key(context: Context) -> dict[str, Any]:
    key = open_client(context).ecc_generate_key_pair(EccCurve.P384, tag=TAG)
    context["public"] = bytes(key.pub_key.der)
    return {"public_sha256": hashlib.sha256(context["public"]).hexdigest()}


def open_by_tag(context: Context) -> dict[str, Any]:
    found = open_client(context).open_key(TAG)
    public = bytes(found.pub_key.der)
    if public != context["public"]:
        raise RuntimeError("OpenKey by tag returned a different public key than this VM created")
    return {"public_sha256": hashlib.sha256(public).hexdigest()}


def close_session(context: Context) -> dict[str, Any]:
    open_client(context).close_session()
    return {}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("establish credential", establish),
           Step("open session", open_session), Step("create key with the shared tag", create_tagged_key),
           Step("open key by tag", open_by_tag), Step("close session", close_session)),
    cleanup=close_client)
