"""Where runs are recorded: the tracking URI, with any credentials in it handed to
MLflow through its environment variables instead of being written anywhere."""

from __future__ import annotations

import os

from reprogrid.config import SCHEMA

DEFAULT_TRACKING_URI = SCHEMA["properties"]["tracking_uri"]["default"]


def tracking_uri(config: dict) -> str:
    """MLFLOW_TRACKING_URI wins over the config's `tracking_uri`. Credentials in it are
    moved to the environment (see `credential_free`)."""
    return credential_free(
        os.environ.get("MLFLOW_TRACKING_URI")
        or config.get("tracking_uri")
        or DEFAULT_TRACKING_URI
    )


def credential_free(uri: str) -> str:
    """The URI without `user:password@`, which go to MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD (MLflow's own way to authenticate, inherited by every job):
    the URI is written to results/tracking.json, logs and reports, a password must not be."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    if parts.username:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
