"""Operator API (FastAPI): health, readiness, metrics, jobs, model hosting, admin. See :func:`create_app`."""

from oracle.api.app import create_app

__all__ = ["create_app"]
