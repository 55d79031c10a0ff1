"""A TCP forwarder that can be cut and restored: the broker becomes unreachable for
whoever connects through it (a producer) while everyone else still reaches it.

Cutting closes the listening socket and every forwarded connection, so new
connections are refused and open ones break, as when the broker's host goes away.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from assessment_store.demo.processes import free_port

ACCEPT_POLL_SECONDS = 0.2
CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until cut."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def forwarding(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        """Listen (again) on the same port and forward every new connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_SECONDS)
        self._stop.clear()
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    start = restore

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self._stop.set()
        listener, self._listener = self._listener, None
        if self._thread is not None:
            self._thread.join(5)
        if listener is not None:
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the broker itself is down: the client sees a closed socket
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(CHUNK):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            # Shutting down wakes the opposite pump (its recv returns EOF); closing a
            # Python socket twice, or after the other pump did, is harmless.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets -= {source, sink}
