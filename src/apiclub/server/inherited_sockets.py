"""Listening sockets handed to a process at its start: by systemd, or by our own parent.

The protocol is systemd's (sd_listen_fds(3)), which gunicorn uses for its re-exec too: the
sockets are file descriptors 3, 4, ... ; `LISTEN_FDS` says how many, `LISTEN_PID` names the
process they are meant for (a child that inherits the variables must not take them), and
`LISTEN_FDNAMES` names each (`FileDescriptorName=` in a .socket unit): `https` and `http`.
`spawn_with_sockets` starts a fresh interpreter with the same layout, plus a pipe on which it
says when it is ready; so a generation started by our parent and a process started by
systemd take their sockets the same way.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Mapping, Sequence

from apiclub.errors import ListenError
from apiclub.server.sockets import bind_listeners
from apiclub.settings import Settings, TlsMode

LISTEN_FDS_START = 3
"""The first inherited descriptor (SD_LISTEN_FDS_START)."""
HTTPS, HTTP = "https", "http"
READY_FD_VARIABLE = "APICLUB_READY_FD"
"""Names the descriptor on which a generation reports to its parent (generations.py)."""
LISTEN_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
MAX_FD = 65536


def take_inherited_sockets(environ: Mapping[str, str]) -> dict[str, socket.socket]:
    """The listening sockets passed to this process, by name; empty when none were.

    Unnamed sockets (`systemd-socket-activate` without `--fdname`) are named by position:
    the first is `https`, the second `http`.

    Raises:
        ListenError: the variables are malformed or a descriptor is not a stream socket.
    """
    raw = environ.get("LISTEN_FDS")
    if not raw or environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    try:
        count = int(raw)
    except ValueError:
        raise ListenError(f"LISTEN_FDS={raw!r} is not a number of sockets") from None
    names = environ.get("LISTEN_FDNAMES", "").split(":") if environ.get("LISTEN_FDNAMES") else []
    sockets: dict[str, socket.socket] = {}
    for index in range(count):
        fd = LISTEN_FDS_START + index
        name = names[index] if index < len(names) else ""
        if name in ("", "unknown"):  # systemd's name for an unnamed socket
            name = (HTTPS, HTTP)[index] if index < 2 else f"fd{fd}"
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ListenError(f"inherited descriptor {fd} is not a socket: {exc}") from None
        if sock.type != socket.SOCK_STREAM:
            raise ListenError(f"inherited socket {fd} ({name}) is not a stream (TCP) socket")
        sock.setblocking(False)
        sock.set_inheritable(True)
        if name in sockets:
            raise ListenError(f"two inherited sockets are named {name!r}: name them https, http")
        sockets[name] = sock
    return sockets


def spawn_with_sockets(
    argv: Sequence[str],
    environ: Mapping[str, str],
    sockets: Sequence[tuple[str, socket.socket]],
    ready_fd: int,
) -> int:
    """Start `argv` (a fresh interpreter) with `sockets` at 3, 4, ... and `ready_fd` after them.

    fork and exec by hand, as gunicorn does: `LISTEN_PID` must be the child's own pid, known
    only after the fork. The parent is single-threaded when it calls this. Every other
    descriptor is closed in the child. Returns the child's pid.
    """
    count = len(sockets)
    env = {key: value for key, value in environ.items() if key not in LISTEN_VARIABLES}
    env["LISTEN_FDS"] = str(count)
    env["LISTEN_FDNAMES"] = ":".join(name for name, _ in sockets)
    env[READY_FD_VARIABLE] = str(LISTEN_FDS_START + count)
    sources = [sock.fileno() for _, sock in sockets] + [ready_fd]
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: nothing here may raise past os._exit
        floor = LISTEN_FDS_START + len(sources)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in sources]
        for index, fd in enumerate(high):
            os.dup2(fd, LISTEN_FDS_START + index)
        os.closerange(floor, MAX_FD)
        env["LISTEN_PID"] = str(os.getpid())
        os.execve(argv[0], list(argv), env)  # noqa: S606 (our own interpreter, no shell)
    finally:
        os._exit(127)


def open_listeners(
    settings: Settings, environ: Mapping[str, str]
) -> tuple[socket.socket, socket.socket | None]:
    """The API and redirect sockets: inherited when this process was given sockets, else bound.

    Inherited, the `https` socket serves the API and `http` the redirects (with TLS off, behind
    a proxy, the API is served on `http`); a listener not passed is off, never bound here: a
    socket-activated service has no privilege to bind ports below 1024.

    Raises:
        ListenError: no usable socket was passed, or binding failed.
    """
    inherited = take_inherited_sockets(environ)
    if not inherited:
        return bind_listeners(settings)
    if settings.tls is TlsMode.OFF:
        api = inherited.pop(HTTP, None) or inherited.pop(HTTPS, None)
        redirect = None
    else:
        api, redirect = inherited.pop(HTTPS, None), inherited.pop(HTTP, None)
    for unused in inherited.values():
        unused.close()
    if api is None:
        wanted = "http (TLS off)" if settings.tls is TlsMode.OFF else "https"
        raise ListenError(
            f"the inherited sockets ({environ.get('LISTEN_FDNAMES') or 'unnamed'}) include none "
            f"for the API: name it {wanted} (FileDescriptorName= in the .socket unit)"
        )
    return api, redirect


def report_failure(environ: Mapping[str, str], message: str) -> bool:
    """Tell our parent (generations.py) why this worker will not serve; whether one listens.

    The parent logs it, with what it does next: stop at the first start, keep the old
    generation at a reload.
    """
    from multiprocessing.connection import Connection

    raw = environ.get(READY_FD_VARIABLE)
    if not raw:
        return False
    try:
        with Connection(int(raw), readable=False) as ready:
            ready.send(message)
    except (OSError, ValueError):
        return False
    return True
