"""The azihsm function and its serial mailbox as QEMU takes them: ``device_add`` properties and
command-line arguments, one builder for the launcher's VMs and the qtest machines
(docs/device.md, docs/serial-mailbox.md)."""

from __future__ import annotations

from pathlib import Path

MAILBOX_ADDRESS = 0x41   # the mailbox's 7-bit address on q35's ICH9 SMBus


def _props(driver: str, **values: object) -> dict[str, str]:
    """``device_add`` properties; a ``None`` value is left to the device's default. Keyword
    underscores become QEMU's dashes."""
    props = {"driver": driver}
    props.update({name.replace("_", "-"): str(value) for name, value in values.items()
                  if value is not None})
    return props


def hsm_device(device_id: str, chardev: str, *, bus: str | None = None, serial: str | None = None,
               res_cnt: int | None = None, timeout_ms: int | None = None,
               partition: int | None = None, ready_timeout_ms: int | None = None) -> dict[str, str]:
    """One azihsm function (QOM id ``device_id``) linked through ``chardev``, for ``device_add``."""
    return _props("azihsm", id=device_id, bus=bus, chardev=chardev, serial=serial, res_cnt=res_cnt,
                  backend_timeout_ms=timeout_ms, partition=partition,
                  ready_timeout_ms=ready_timeout_ms)


def mailbox_device(device_id: str, chardev: str, *, serial: str | None = None,
                   address: int = MAILBOX_ADDRESS, timeout_ms: int | None = None) -> dict[str, str]:
    """One azihsm-i2c serial mailbox (QOM id ``device_id``) on q35's ICH9 SMBus."""
    return _props("azihsm-i2c", id=device_id, bus="i2c", address=f"0x{address:02x}",
                  chardev=chardev, serial=serial, backend_timeout_ms=timeout_ms)


def device_argv(props: dict[str, str]) -> list[str]:
    """``-device DRIVER,name=value,...`` for ``device_add`` properties."""
    rest = (f"{name}={value}" for name, value in props.items() if name != "driver")
    return ["-device", ",".join((props["driver"], *rest))]


def socket_chardev_argv(chardev: str, socket: Path | str, reconnect_ms: int) -> list[str]:
    """``-chardev socket`` that connects to the backend at ``socket`` and reconnects after a loss."""
    return ["-chardev", f"socket,id={chardev},path={socket},reconnect-ms={reconnect_ms}"]
