"""Traffic traces: every command that crosses the device, as JSON lines.

``redaction`` shows only the message fields the schemas declare safe; ``decode`` turns MBOR requests and
responses into readable, redacted JSON; ``record`` writes the backend's trace (``pyhsm serve --trace
FILE``, a 0600 file); ``qemu_log`` reads the device's QEMU trace events; ``commands`` is ``pyhsm trace``.
"""
