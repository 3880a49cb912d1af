"""The one exception type the command line turns into a one-line message."""


class LongdepsError(ValueError):
    """Bad input or a failed run, described in one line that names the bad value."""
