"""cluster_check: a worker host proves it belongs to the core before its workers start (mounted as a file)."""
