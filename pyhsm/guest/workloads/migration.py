"""Live migration seen from the guest (docs/migration.md, "What the guest sees").

Before: establish the credential keeping what the guest needs to come back (BK3, the masked BK3,
the POTA key, the partition BMK), open a session with a known seed (its session BMK kept), generate
a P-384 app key (its masked blob kept) and sign. Then report ``ready`` (step "ready for migration")
and wait for the host's ``go`` line on the console: the host migrates the VM meanwhile.

After: the old session's first command shows what the HSM presents (SessionNeedsRenegotiation
after the NSSR that follows a migration); recovery is the vendor's flow
(live_migration_sim.rs): EstablishCredential with the masked BK3 and the partition BMK (on another
physical HSM the masked BK3 of the first is refused, MaskedKeyDecodeFailed, since BK_BOOT is
device-unique: InitBk3 with the owner's BK3 masks it for this device first), ReopenSession with
the old session id, seed and session BMK (same id back; a device that never knew the session
refuses it, then OpenSession with the same seed on a new descriptor), UnmaskKey of the key's masked blob, and a
signature with the unmasked key. The host verifies both signatures against the public key reported
before the migration and checks the unmasked key's public key is the same.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import credential, host_commands
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client
from pyhsm.protocol.console import format_event
from pyhsm.protocol.ddi.types import EccCurve

WAIT_S = 600.0          # the host's migration, from "ready" to "go"
SETTLE_S = 30.0         # the first command after the migration may fail while the link comes back


def _status(exc: Exception) -> str:
    return getattr(exc, "name", None) or f"{type(exc).__name__}: {exc}"


def establish(context: Context) -> dict[str, Any]:
    client = open_client(context)
    context["pota"] = ec.generate_private_key(ec.SECP384R1())
    context["masked_bk3"] = client.init_bk3(credential.BK3)
    context["bmk"] = client.establish_credential(credential.APP_ID, credential.APP_PIN,
                                                 context["masked_bk3"], context["pota"])
    return {"masked_bk3_bytes": len(context["masked_bk3"]), "bmk_bytes": len(context["bmk"])}


def open_session(context: Context) -> dict[str, Any]:
    context["seed"] = os.urandom(48)
    opened = open_client(context).open_session(credential.APP_ID, credential.APP_PIN, context["seed"])
    context["session"] = opened
    return {"session_id": opened.sess_id, "bmk_session_bytes": len(opened.bmk_session)}


def generate_key(context: Context) -> dict[str, Any]:
    key = open_client(context).ecc_generate_key_pair(EccCurve.P384)
    context["key_id"], context["masked_key"] = key.private_key_id, bytes(key.masked_key)
    context["public_der"] = bytes(key.pub_key.der)
    return {"key_id": key.private_key_id, "masked_key_bytes": len(key.masked_key)}


def _sign(context: Context, key_id: int, label: bytes) -> dict[str, Any]:
    digest = hashlib.sha384(b"pyhsm migration workload " + label + os.urandom(16)).digest()
    signature = open_client(context).ecc_sign(key_id, digest)
    return {"digest": digest.hex(), "signature": bytes(signature).hex(),
            "public_key_der": context["public_der"].hex(), "key_id": key_id}


def sign_before(context: Context) -> dict[str, Any]:
    return _sign(context, context["key_id"], b"before")


def wait_for_migration(context: Context) -> dict[str, Any]:
    """Report ``ready`` (the host migrates now), then wait for its ``go`` line."""
    print(format_event("ready", workload="migration", session_id=context["session"].sess_id), flush=True)
    started = time.monotonic()
    command = host_commands.read_command(sys.stdin, WAIT_S, host_commands.GO)
    return {"waited_s": round(time.monotonic() - started, 2), "host": command.get("note", "")}


def old_session_after(context: Context) -> dict[str, Any]:
    """The old session's first command after the migration: what the HSM presents. Errors below the
    DDI (no link yet: the destination's backend may be missing) are retried every 0.5 s for
    ``SETTLE_S``, each attempt's error and duration recorded; a DDI status ends the step."""
    from pyhsm.client import DdiError
    deadline, attempts = time.monotonic() + SETTLE_S, []
    while True:
        started = time.monotonic()
        try:
            _sign(context, context["key_id"], b"old session")
            return {"old_session": "still usable", "failed_attempts": attempts}
        except DdiError as exc:
            context["presented"] = exc.name
            return {"old_session": exc.name, "failed_attempts": attempts}
        except Exception as exc:
            attempts.append({"error": _status(exc)[:80], "ms": round((time.monotonic() - started) * 1000)})
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def re_establish(context: Context) -> dict[str, Any]:
    """EstablishCredential with the saved masked BK3 and partition BMK; on another HSM, InitBk3 first."""
    from pyhsm.client import DdiError
    client = open_client(context)
    args = (credential.APP_ID, credential.APP_PIN)
    try:
        bmk = client.establish_credential(*args, context["masked_bk3"], context["pota"], bmk=context["bmk"])
        how = "saved masked BK3"
    except DdiError as exc:
        if exc.name != "MaskedKeyDecodeFailed":
            raise
        context["masked_bk3"] = client.init_bk3(credential.BK3)
        bmk = client.establish_credential(*args, context["masked_bk3"], context["pota"], bmk=context["bmk"])
        how = "InitBk3 on this HSM (its BK_BOOT refused the saved masked BK3), then the saved BMK"
    return {"credential": how, "same_bmk": bytes(bmk) == bytes(context["bmk"])}


def reopen_session(context: Context) -> dict[str, Any]:
    from pyhsm.client import DdiError
    client, session = open_client(context), context["session"]
    try:
        reopened = client.reopen_session(session.sess_id, credential.APP_ID, credential.APP_PIN,
                                         session.seed, session.bmk_session)
        return {"reopened": True, "session_id": reopened.sess_id,
                "same_id": reopened.sess_id == session.sess_id}
    except DdiError as exc:
        refused = exc.name
    # This HSM never had the session: the driver still counts it on the old descriptor, so the
    # session is opened again (same seed) on a new descriptor.
    close_client(context)
    opened = open_client(context).open_session(credential.APP_ID, credential.APP_PIN, session.seed)
    return {"reopened": False, "reopen_refused": refused, "session_id": opened.sess_id,
            "new_descriptor": True}


def unmask_key(context: Context) -> dict[str, Any]:
    key = open_client(context).unmask_key(context["masked_key"])
    public = bytes(key.pub_key.der) if key.pub_key is not None else b""
    context["key_id_after"] = key.key_id
    return {"key_id": key.key_id, "same_public_key": public == context["public_der"]}


def sign_after(context: Context) -> dict[str, Any]:
    return _sign(context, context["key_id_after"], b"after")


def close_session(context: Context) -> dict[str, Any]:
    open_client(context).close_session()
    return {}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("establish credential (keep BK3, BMK)", establish),
           Step("open session (keep seed, session BMK)", open_session),
           Step("generate P-384 key (keep masked blob)", generate_key),
           Step("sign before migration", sign_before), Step("ready for migration", wait_for_migration),
           Step("old session after migration", old_session_after),
           Step("re-establish credential", re_establish), Step("reopen session", reopen_session),
           Step("unmask key", unmask_key), Step("sign after migration", sign_after),
           Step("close session", close_session)),
    cleanup=close_client)
