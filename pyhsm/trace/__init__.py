"""Traffic traces: every command that crosses the device, as JSON lines.

``redaction`` declares which DDI fields are secret; ``decode`` turns MBOR requests and responses into
readable, redacted JSON; ``record`` writes the backend's trace (``pyhsm serve --trace FILE``);
``qemu_log`` reads the device's QEMU trace events; ``commands`` is ``pyhsm trace``.
"""
