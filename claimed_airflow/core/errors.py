"""Errors that reach users as one clear line."""


class ClaimedError(Exception):
    """A problem with the user's input or configuration, reported as one line without a traceback."""


class ParameterError(ClaimedError, ValueError):
    """A parameter value that cannot be used, e.g. ``epochs: expected an integer, got 'abc'``."""
