"""The one exception type that means "the user asked for something impossible"."""


class UsageError(Exception):
    """Bad flags, missing data, impossible configuration.

    Entry points catch it, print one line naming the problem and the fix, and exit with code 2 —
    never a traceback, never a half-written run directory.
    """


EXIT_USAGE = 2
