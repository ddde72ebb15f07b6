"""One exception type for bad input, so the CLI can turn it into a one-line message and exit 2."""


class InputError(Exception):
    """Bad user input: a missing/corrupt file, a malformed table, an unknown name.

    The message is one line that names the file (and line or column) and the problem.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
