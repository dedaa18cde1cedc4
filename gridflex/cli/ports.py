"""A listening port that is taken, said in one line (and exit 2) instead of a traceback from deep inside.

`gridflex cloud` checks its API port before it builds anything, so "port 8080 on
127.0.0.1 is in use" is the whole answer; a port lost in the race between that check and
the real bind, or a simulator's port, comes back as `OSError(EADDRINUSE)`, possibly
inside an exception group from a task group, and `address_in_use` finds it there.
"""

from __future__ import annotations

import errno
import socket

import typer

__all__ = ["EXIT_PORT", "address_in_use", "port_in_use_exit", "require_free_port"]

EXIT_PORT = 2  # the same as a bad config: the operator must change something before retrying


def _taken(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_in_use_exit(command: str, host: str, port: int, hint: str) -> typer.Exit:
    """Print the one line and return the Exit(2) to raise."""
    typer.echo(f"{command}: port {port} on {host} is in use ({hint})", err=True)
    return typer.Exit(EXIT_PORT)


def require_free_port(command: str, host: str, port: int, hint: str) -> None:
    """Exit 2 with one line on stderr if TCP `port` on `host` cannot be bound now (0 = any: always free)."""
    if port == 0:
        return
    exc = _taken(host, port)
    if exc is None:
        return
    if exc.errno == errno.EADDRINUSE:
        raise port_in_use_exit(command, host, port, hint)
    typer.echo(f"{command}: cannot listen on {host}:{port}: {exc.strerror}", err=True)
    raise typer.Exit(EXIT_PORT)


def address_in_use(exc: BaseException, _depth: int = 0) -> OSError | None:
    """The EADDRINUSE `OSError` in `exc`, an exception group around it or its causes; None if none."""
    if _depth > 8:
        return None
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = address_in_use(inner, _depth + 1)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return address_in_use(cause, _depth + 1) if cause is not None else None
