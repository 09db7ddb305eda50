"""Debugging tools: command traces, guest memory inspection, QMP (docs/debugging.md)."""
