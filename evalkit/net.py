"""The HTTP listeners of ``evalkit serve`` (the health endpoint, the OTLP receiver): a
threaded server, whether an address is loopback, and the URL of an address."""

from __future__ import annotations

import ipaddress
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["ServiceHTTPServer", "http_url", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def http_url(host: str, port: int, path: str = "") -> str:
    """``http://host:port`` and ``path``, an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
