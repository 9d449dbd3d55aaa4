"""Errors the harness reports instead of a traceback."""


class LabUnavailable(Exception):
    """The lab cannot run on this machine (no QEMU, no kernel and no apt): a skip, not a failure."""
