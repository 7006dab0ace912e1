"""How ``crispml serve`` runs the model API's process: uvicorn's options and glibc's malloc
arenas."""

from __future__ import annotations

from typing import TypedDict

# How long an idle keep-alive connection stays open. uvicorn's default, 5 s, dropped requests:
# when the server process stalls for longer (a loaded machine, swapping, a pause), the
# connections that went idle just before have their keep-alive timer fire before their next
# request, already sent by the client, is read; the server closes them and the clients get
# "connection reset". 75 s (nginx's default) outlasts such stalls and the idle timeout of common
# clients and proxies (60 s), so they close idle connections first.
KEEP_ALIVE_S = 75


class ServerOptions(TypedDict):
    timeout_keep_alive: int
    backlog: int


def server_options() -> ServerOptions:
    """uvicorn's options for the model API server (``crispml serve``)."""
    return {"timeout_keep_alive": KEEP_ALIVE_S, "backlog": 2048}


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (what ``MALLOC_ARENA_MAX`` does at start).

    The server answers from a pool of threads that come and go; glibc gives threads their own
    arenas (up to eight per core), and each keeps freed memory fragmented, so a busy server's
    resident memory creeps up for minutes. Two arenas keep it flat and cost no measurable
    speed here. Call it before the threads start; False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max = -8  # from glibc's malloc.h
    return bool(mallopt(m_arena_max, arenas))
