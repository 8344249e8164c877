"""The HTTP listeners of ``evalkit serve`` (the health endpoint, the OTLP receiver): a
threaded server, whether an address is loopback, the URL of an address, and the host names
a listener is reached by."""

from __future__ import annotations

import errno
import ipaddress
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from evalkit.errors import ConfigError

__all__ = ["ServiceHTTPServer", "host_names", "http_url", "is_loopback", "listening"]

_ServerT = TypeVar("_ServerT", bound="ServiceHTTPServer")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_names(address: str) -> list[str]:
    """The names a browser reaches a listener on ``address`` by, as its ``Host`` header gives
    them (without the port): the address itself; ``localhost`` and the loopback addresses
    for a loopback one; for a wildcard (``0.0.0.0``, ``::``), every address of this
    machine's network interfaces, and for any address beyond loopback this machine's host
    name. A name outside them (``rebind.example``, a DNS rebinding) is not this listener's."""
    wildcard = address in ("0.0.0.0", "::", "")
    names = [] if wildcard else [address]
    if wildcard or is_loopback(address):
        names += ["localhost", "127.0.0.1", "::1"]
    if wildcard:
        import psutil  # the `dashboard` extra; only a wildcard address needs it

        names += [
            entry.address.split("%", 1)[0]  # an IPv6 link-local address's zone is no host
            for entries in psutil.net_if_addrs().values()
            for entry in entries
            if entry.family in (socket.AF_INET, socket.AF_INET6)
        ]
    if not is_loopback(address):
        names.append(socket.gethostname())
    return list(dict.fromkeys(name.lower() for name in names if name))


class ServiceHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP listener of ``evalkit serve`` on ``host`` (IPv6 when the address is
    one); its request threads never keep the service from stopping."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 refuses (or resets) connections when a fleet of
    # exporters or a burst of scrapes connects at once.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)


def listening(
    server: type[_ServerT],
    host: str,
    port: int,
    handler: type[BaseHTTPRequestHandler],
    *,
    what: str,
    settings: tuple[str, str],
) -> _ServerT:
    """``server`` listening on ``host``:``port``; ``what`` names the listener and
    ``settings`` the settings of its address and port (``[otlp] host``, ``[otlp] port``).

    An address that is not this machine's (a misspelt name, another machine's IP) is a
    ConfigError naming the setting; any other refusal (the port taken, a privileged port)
    an OSError saying what to do.
    """
    try:
        return server(host, port, handler)
    except OSError as error:
        reason = error.strerror or str(error)
        if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"{what} cannot listen on {host}:{port}: {host!r} is no address of this "
                f"machine ({reason}); set {settings[0]} (127.0.0.1 for loopback)"
            ) from error
        raise OSError(
            f"{what} cannot listen on {host}:{port} ({reason}); free the port or set "
            f"{settings[1]} (0 picks a free one)"
        ) from error


def http_url(host: str, port: int, path: str = "") -> str:
    """``http://host:port`` and ``path``, an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
