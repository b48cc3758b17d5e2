"""The one exception type users see: a problem with their input, shown as one line."""


class SlimtuneError(Exception):
    """Bad input or a missing prerequisite. The CLI prints `slimtune: error: <message>` and exits 2.

    Messages name the flag or field at fault and say how to fix it, in one line.
    """
