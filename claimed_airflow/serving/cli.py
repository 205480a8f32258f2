"""``claimed-airflow serve``: serve a published model over HTTP with the Open Inference Protocol.

The model folder is the one ``deploy.local`` publishes (``<models>/<name>[/<version>]``); see
``claimed_airflow.serving`` for the endpoints and limits.
"""

from __future__ import annotations

import argparse
import logging
import os

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import DEFAULT_MAX_PIXELS
from claimed_airflow.serving.limits import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_THREADS,
    IDLE_TIMEOUT,
    REQUEST_TIMEOUT,
)


def register(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a published model over HTTP (KServe V2 / Open Inference Protocol and V1)",
        description=__doc__.split("\n\n", 1)[0],
    )
    serve.add_argument("model_folder", help="folder published by deploy.local: <models>/<name>[/<version>]")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--name", help="model name in URLs (default: the model folder's name)")
    serve.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="largest batch accepted")
    serve.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image or DICOM frame (rows x columns x samples) decoded (default {DEFAULT_MAX_PIXELS})",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=min(DEFAULT_THREADS, os.cpu_count() or 1),
        help="threads that decode and predict (default: 4, at most the CPU count)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open connections and requests in progress; beyond, 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help=f"seconds a silent connection stays open ({IDLE_TIMEOUT:g})",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        help=f"seconds to receive one request, headers and body ({REQUEST_TIMEOUT:g})",
    )
    serve.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for option in ("max_batch", "max_pixels", "threads", "max_connections"):
        if getattr(args, option) < 1:
            raise ClaimedError(f"--{option.replace('_', '-')}: must be at least 1, got {getattr(args, option)}")
    for option in ("idle_timeout", "request_timeout"):
        if not getattr(args, option) > 0:
            raise ClaimedError(
                f"--{option.replace('_', '-')}: must be more than 0 seconds, got {getattr(args, option)}"
            )
    from claimed_airflow.serving.models import ServedModel
    from claimed_airflow.serving.server import make_server

    model = ServedModel(args.model_folder, name=args.name, max_batch=args.max_batch, max_pixels=args.max_pixels)
    try:
        server, listener = make_server(
            model,
            args.host,
            args.port,
            threads=args.threads,
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            request_timeout=args.request_timeout,
            access_log=True,
        )
    except OSError as exc:
        raise ClaimedError(f"--port: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = listener.getsockname()[:2]
    print(
        f"serving {model.name} version {model.version} from {model.folder}\n"
        f"  V2: http://{host}:{port}/v2/models/{model.name}/infer\n"
        f"  V1: http://{host}:{port}/v1/models/{model.name}:predict",
        flush=True,
    )
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
