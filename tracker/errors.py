"""Errors the command line turns into one readable line and an exit code."""


class TrackerError(Exception):
    """A handled failure: the message says what failed and what to do next (exit 1)."""

    exit_code = 1


class InputError(TrackerError):
    """Bad usage or input from the person at the keyboard (exit 2)."""

    exit_code = 2
