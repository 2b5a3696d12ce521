"""The one exception type the CLI turns into a single line on stderr."""


class InputError(Exception):
    """Bad user input. The message names the file (or option) and what is wrong, on one line."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")
