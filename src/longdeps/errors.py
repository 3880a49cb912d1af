"""The one exception type the command line turns into a one-line message, and the warnings the
library gives."""

import os
import sys
import warnings

#: where the library's own frames live
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class LongdepsError(ValueError):
    """Bad input or a failed run, described in one line that names the bad value."""


def warn(message: str) -> None:
    """Warn in one line, from the first caller outside longdeps and torch (which calls into modules):
    the line of the user's code that led to it, not the library's."""
    torch = sys.modules.get("torch")  # (not imported here: the command line's --help runs without it)
    internal = (_PACKAGE,) + ((os.path.dirname(os.path.abspath(torch.__file__)),) if torch else ())
    level, frame = 1, sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(internal):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, stacklevel=level)
