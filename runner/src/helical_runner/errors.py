"""The two failure kinds the CLI turns into exit codes (see docs/contracts.md)."""


class ConfigError(Exception):
    """Bad configuration for the whole run (missing path, missing model files): exit code 2."""


class DatasetError(Exception):
    """One dataset cannot be processed; the others still run: exit code 1.

    The message is one line that names the file, the cause and the fix.
    """
