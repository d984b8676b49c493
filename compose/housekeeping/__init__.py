"""Retention of task logs and staging leftovers (retention.py runs as a mounted file)."""
