"""The one error the root of trust raises."""


class RootOfTrustFailure(Exception):
    """Power-on could not establish the device identity (PUF, health test, firmware or NV-store failure).

    The backend answers the device's HELLO with result 3 (root-of-trust failure; the device sets CSTS.CFS).
    """
