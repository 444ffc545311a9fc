"""Errors a user can cause: the CLI turns them into one line and a non-zero exit, no traceback."""


class UserError(Exception):
    """A problem with the user's input (a file, a value, a flag) that they can fix; the message says how."""

    exit_code = 2


class DataError(UserError):
    """Input data that cannot be used as given (unreadable file, wrong schema, empty split)."""

    exit_code = 1


def without_path(exc: Exception | str, path: str | object) -> str:
    """An error's first line without its leading 'PATH: ' (rejected.csv holds the path in its own column)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix(f"{path}: ")
