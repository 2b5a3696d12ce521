"""The exception types the CLI turns into a single line on stderr."""


class InputError(Exception):
    """Bad user input. The message names the file (or option) and what is wrong, on one line."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")


class DiskFull(Exception):
    """A write ran out of room (file system full, quota, `ulimit -f`) and was abandoned cleanly."""

    def __init__(self, where, err: OSError):
        reason = err.strerror or str(err).split(" (")[0]
        super().__init__(f"{where}: disk full while writing ({reason}); files finished before it are intact "
                         f"and the partial file was removed; free space and rerun")
