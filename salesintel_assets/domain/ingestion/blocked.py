"""A problem with a whole input (file, column, setting) that stops the pull
before anything is written. Its message is one sentence: what is wrong,
where, and what to do."""


class BlockedInput(ValueError):
    """Raised for file-level problems; the command exits with code 2."""

    exit_code = 2
