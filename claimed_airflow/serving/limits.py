"""Every limit of the model server and its default, in one place (``claimed-airflow serve`` options)."""

MAX_BODY_BYTES = 64 * 1024 * 1024  # a request body, counted while it arrives (413)
DEFAULT_MAX_BATCH = 256  # items of one request (413)
DEFAULT_THREADS = 4  # threads that decode and predict; requests beyond wait (cheaply) for one
BODIES_PER_THREAD = 4  # request bodies held in memory at once: at most this x threads x MAX_BODY_BYTES
DEFAULT_MAX_CONNECTIONS = 256  # open connections + requests in progress; beyond, uvicorn answers 503
IDLE_TIMEOUT = 5.0  # seconds a connection may stay silent (before its first request and between requests)
REQUEST_TIMEOUT = 60.0  # seconds to receive one whole request (headers and body) once it has begun
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (httptools itself has no limit; 431)
