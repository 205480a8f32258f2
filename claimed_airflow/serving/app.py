"""The HTTP application (Starlette, ASGI): the routes of both protocols over a :class:`ServedModel`."""

from __future__ import annotations

from claimed_airflow import __version__
from claimed_airflow.serving.documents import DIGITS, RequestError
from claimed_airflow.serving.limits import BODIES_PER_THREAD, DEFAULT_THREADS, MAX_BODY_BYTES
from claimed_airflow.serving.models import ServedModel


def make_app(model: ServedModel, threads: int = DEFAULT_THREADS):
    """The Starlette (ASGI) application answering for ``model``; decoding and prediction use ``threads`` threads.

    At most ``BODIES_PER_THREAD * threads`` requests are read or answered at once; the others wait, unread.
    """
    import anyio
    import msgspec
    from starlette.applications import Starlette
    from starlette.convertors import StringConvertor, register_url_convertor
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    class ModelName(StringConvertor):
        regex = "[^/:]+"  # so that /v1/models/<name>:predict is not read as the model <name>:predict

    register_url_convertor("claimed_model", ModelName())
    limiter = anyio.CapacityLimiter(threads)
    held = anyio.Semaphore(BODIES_PER_THREAD * threads)  # request bodies in memory, from their first byte

    def reply(status: int, document: dict, headers: dict | None = None) -> Response:
        return Response(msgspec.json.encode(document), status, headers, media_type="application/json")

    def check_model(request: Request) -> None:
        name, version = request.path_params["name"], request.path_params.get("version")
        if name != model.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {model.name!r}")
        if version is not None and version != model.version:
            raise RequestError(404, f"model {name!r} has no version {version!r}; served: {model.version}")

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) as soon as more than MAX_BODY_BYTES have arrived, whatever the headers say."""
        declared = request.headers.get("content-length")
        if declared is None and "transfer-encoding" not in request.headers:
            raise RequestError(411, "Content-Length: required")
        if declared is not None and DIGITS.fullmatch(declared) and int(declared) > MAX_BODY_BYTES:
            raise RequestError(413, f"request body: {declared} bytes is more than the limit of {MAX_BODY_BYTES}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RequestError(413, f"request body: more than the limit of {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(request: Request) -> Response:
        check_model(request)
        content_type = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        header_length = request.headers.get("inference-header-content-length")
        v2 = request.url.path.startswith("/v2/")
        async with held:  # beyond, a request waits with its body unread (in the socket, not in memory)
            payload = await read_body(request)
            document = await anyio.to_thread.run_sync(
                model.answer, v2, payload, content_type, header_length, limiter=limiter
            )
        return reply(200, document)

    async def metadata(request: Request) -> Response:
        check_model(request)
        return reply(200, model.metadata_v2())

    async def ready(request: Request) -> Response:
        check_model(request)
        return reply(200, {"name": model.name, "ready": True})

    async def health(request: Request) -> Response:
        state = request.url.path.rsplit("/", 1)[-1]
        return reply(200, {state: True})

    async def server_info(request: Request) -> Response:
        return reply(200, {"name": "claimed-airflow", "version": __version__, "extensions": []})

    async def request_error(request: Request, exc: RequestError) -> Response:
        # a refused body may still be arriving: close the connection rather than read it
        return reply(exc.status, {"error": exc.message}, {"Connection": "close"} if exc.status == 413 else None)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return reply(405, {"error": f"{path}: use {allowed}"}, {"Allow": allowed})
        if exc.status_code == 404:
            return reply(404, {"error": f"{path}: not found"})
        return reply(exc.status_code, {"error": f"{path}: {exc.detail}"})

    async def disconnected(request: Request, exc: ClientDisconnect) -> Response:
        return reply(400, {"error": "request: the client disconnected"})  # nobody reads it

    async def internal_error(request: Request, exc: Exception) -> Response:  # uvicorn logs the traceback
        return reply(500, {"error": "internal server error; see the server log"})

    model_paths = ("/v2/models/{name:claimed_model}", "/v2/models/{name:claimed_model}/versions/{version}")
    routes = [
        Route("/v2/health/live", health, methods=["GET"]),
        Route("/v2/health/ready", health, methods=["GET"]),
        Route("/v2", server_info, methods=["GET"]),
        *[Route(f"{base}/infer", predict, methods=["POST"]) for base in model_paths],
        *[Route(f"{base}/ready", ready, methods=["GET"]) for base in model_paths],
        *[Route(base, metadata, methods=["GET"]) for base in model_paths],
        Route("/v1/models/{name:claimed_model}:predict", predict, methods=["POST"]),
        Route("/v1/models/{name:claimed_model}", ready, methods=["GET"]),
    ]
    handlers = {RequestError: request_error, HTTPException: http_error, ClientDisconnect: disconnected}
    return Starlette(routes=routes, exception_handlers={**handlers, Exception: internal_error})
