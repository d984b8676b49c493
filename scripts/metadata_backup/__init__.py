"""make backup / make restore: the metadata database's backups (docs/operations.md). Run as python -m metadata_backup."""
