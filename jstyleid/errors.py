"""The exception types the CLI turns into a single line on stderr."""


class InputError(Exception):
    """Bad user input. The message names the file (or option) and what is wrong, on one line."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")


class DiskFull(Exception):
    """A write found no room (file system full, quota, `ulimit -f`) and was abandoned cleanly."""

    def __init__(self, where, reason: str):
        super().__init__(f"{where}: disk full ({reason}); files finished before it are intact and nothing "
                         f"half-written is left; free space and rerun")
