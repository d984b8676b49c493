"""Alertmanager's configuration, rendered from .env at start (render_config.py runs as a mounted file)."""
