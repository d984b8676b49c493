"""The two failure kinds the CLI turns into exit codes (see docs/contracts.md), and the words for the rest."""

import errno
from pathlib import Path


class ConfigError(Exception):
    """Bad configuration for the whole run (missing path, missing model files): exit code 2."""


class DatasetError(Exception):
    """One dataset cannot be processed; the others still run: exit code 1.

    The message is one line that names the file, the cause and the fix.
    """


def fix_for(exc: BaseException) -> str:
    """The fix for the common unexpected failures (they are retried, so the last try's message matters)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "; out of memory: raise RUNNER_MEMORY in .env, or lower max_cells, --chunk-cells or --batch-size"
    # h5py reports a full disk as an OSError whose errno may be unset, with the C library's text inside.
    if isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)):
        return "; the results filesystem is full: free space under HELICAL_RESULTS_DIR"
    return ""


def unexpected(source: Path, exc: BaseException) -> str:
    """One line naming the dataset, the cause and, for the common ones, the fix."""
    return f"{source}: {type(exc).__name__}: {exc}{fix_for(exc)}"
