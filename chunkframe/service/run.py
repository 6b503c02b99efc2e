"""``chunkframe serve``: the service on uvicorn; a public address is refused without a token."""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import logging
import os
import socket
from typing import Any

from ..core.config import storage_options_json
from ..core.errors import InvalidArgumentError
from .config import ServiceConfig
from .errors import MissingExtraError

__all__ = ["add_arguments", "serve_command", "serve", "is_loopback", "check_bind",
           "app_from_environment"]

TOKEN_ENV = "CHUNKFRAME_TOKEN"
CONFIG_ENV = "CHUNKFRAME_SERVE_CONFIG"  # settings handed to worker processes (never the token)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``chunkframe serve`` (the data settings are the global ones)."""
    d = ServiceConfig()
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", default=None, help=f"bearer token clients must send; prefer "
                   f"{TOKEN_ENV}, as a command line is visible to other users [{TOKEN_ENV}]")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (each with its own caches, chunk cache included)")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, metavar="N",
                   help=f"largest request body (default {d.max_body_bytes})")
    p.add_argument("--max-batch", type=int, default=d.max_batch, metavar="N",
                   help=f"most serial numbers in one batch read (default {d.max_batch})")
    p.add_argument("--max-rows", type=int, default=d.max_rows, metavar="N",
                   help=f"most rows in one slice (default {d.max_rows})")
    p.add_argument("--health-interval", type=float, default=d.health_interval, metavar="SECONDS",
                   help="seconds between background dry runs of the recoverer, reported by "
                   f"/v1/health?detail=1 (0: off; default {d.health_interval:g})")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="the least severe lines the server logs: %(choices)s (default info)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token."""
    if token is None and not is_loopback(host):
        raise InvalidArgumentError(
            f"refusing to serve on {host!r} without a token: anyone who can reach that address "
            f"could read every dataset. Set {TOKEN_ENV} (or --token), or bind a loopback "
            "address such as 127.0.0.1")


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("chunkframe serve", module) from None


def log_config(uvicorn: Any, log_level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with chunkframe's loggers (the service's errors and
    notes such as a client's disconnect) written by its handler at ``log_level``."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    level = logging.getLevelName(log_level.upper())
    config["loggers"]["chunkframe"] = {"handlers": ["default"], "propagate": False,
                                       "level": level if isinstance(level, int) else "INFO"}
    return dict(config)


def serve(connect_options: dict[str, Any], config: ServiceConfig, host: str = "127.0.0.1",
          port: int = 8765, workers: int = 1, access_log: bool = False,
          log_level: str = "info") -> None:
    """Serve the datasets of ``cf.connect(**connect_options)`` until interrupted."""
    check_bind(host, config.token)
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be at least 1, got {workers}")
    uvicorn = _require("uvicorn")
    _require("starlette")
    from ..session import connect

    client = connect(**connect_options)  # fails now on bad settings; starts embedded Redis once
    options = dict(host=host, port=port, access_log=access_log, log_level=log_level,
                   server_header=False, log_config=log_config(uvicorn, log_level))
    if workers == 1:
        from .app import create_app

        uvicorn.run(create_app(client, config), **options)
        return
    os.environ[CONFIG_ENV] = json.dumps({"connect": connect_options, "limits": config.limits(),
                                         "health_interval": config.health_interval})
    if config.token is not None:
        os.environ[TOKEN_ENV] = config.token  # inherited by the workers, never logged
    else:
        os.environ.pop(TOKEN_ENV, None)
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, **options)


def app_from_environment() -> Any:
    """The app of one worker process of ``serve(..., workers=N)``."""
    from ..session import connect
    from .app import create_app

    doc = json.loads(os.environ[CONFIG_ENV])
    config = ServiceConfig(token=os.environ.get(TOKEN_ENV) or None, **doc["limits"],
                           health_interval=doc.get("health_interval", 60.0))
    return create_app(connect(**doc["connect"]), config)


def serve_command(args: argparse.Namespace) -> int:
    """``chunkframe serve``: called by the command line with its parsed arguments."""
    options = (storage_options_json(args.storage_options, "--storage-options")
               if getattr(args, "storage_options", None) else None)  # CHUNKFRAME_STORAGE_OPTIONS
    connect_options = {"store": args.store, "redis": args.redis, "catalog": args.catalog,
                       "home": args.home, "prefix": args.prefix, "storage_options": options}
    token = args.token or os.environ.get(TOKEN_ENV) or None
    config = ServiceConfig(token=token, max_body_bytes=args.max_body_bytes,
                           max_batch=args.max_batch, max_rows=args.max_rows,
                           health_interval=args.health_interval)
    serve(connect_options, config, host=args.host, port=args.port, workers=args.workers,
          access_log=args.access_log, log_level=args.log_level)
    return 0
