"""Errors a user can cause: the CLI turns them into one line and a non-zero exit, no traceback."""


class UserError(Exception):
    """A problem with the user's input (a file, a value, a flag) that they can fix; the message says how."""

    exit_code = 2


class DataError(UserError):
    """Input data that cannot be used as given (unreadable file, wrong schema, empty split)."""

    exit_code = 1
