"""A descriptor closed with its session still open frees that session on the device.

Opens a session on a fresh descriptor and closes the descriptor without CloseSession, more times
than the partition has session slots (8); then holds 8 sessions at once. If the driver's flush on
release did not free the session, an OpenSession would fail with VaultSessionLimitReached.
"""

from __future__ import annotations

from typing import Any

from pyhsm.client import credential
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client, open_new_client

SESSION_SLOTS = 8
ROUNDS = SESSION_SLOTS + 4


def establish(context: Context) -> dict[str, Any]:
    return credential.ensure_established(open_client(context))


def leak_sessions(context: Context) -> dict[str, Any]:
    sessions = []
    for _ in range(ROUNDS):
        client = open_new_client(context)
        sessions.append(credential.open_session(client).sess_id)
        client.transport.close()    # the descriptor goes away with its session still open
    return {"rounds": ROUNDS, "session_ids": sessions}


def fill_all_slots(context: Context) -> dict[str, Any]:
    clients = [open_new_client(context) for _ in range(SESSION_SLOTS)]
    try:
        ids = [credential.open_session(c).sess_id for c in clients]
        for client in clients:
            client.close_session()
    finally:
        for client in clients:
            client.transport.close()
    return {"session_ids": ids}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("establish credential", establish),
           Step(f"open a session and close the descriptor, {ROUNDS} times", leak_sessions),
           Step(f"then hold {SESSION_SLOTS} sessions at once", fill_all_slots)),
    cleanup=close_client)
