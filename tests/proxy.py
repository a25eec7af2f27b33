"""A small TCP proxy between the store and a nats-server, for fault tests: cut connections, drop a publish's ack.

It reads the server-to-client direction as NATS protocol frames, so it can
drop exactly one JetStream publish acknowledgement (a MSG whose payload starts
with ``{"stream":``) while passing everything else through untouched.
"""

from __future__ import annotations

import socket
import threading

from django_eventstore.nats_process import free_port


class NatsProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.host = host
        self.upstream = (host, upstream_port)
        self.port = free_port()
        self.dropped = 0
        self._drop_next_ack = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server((host, self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def drop_next_ack(self) -> None:
        """Swallow the next publish acknowledgement the server sends (the publish itself is stored)."""
        with self._lock:
            self._drop_next_ack = True

    def cut(self) -> None:
        """Close every proxied connection at once, as a network cut would (new connections are still accepted)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _shut(conn)
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_server, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src, dst)

    def _pump_server(self, src: socket.socket, dst: socket.socket) -> None:
        """Server to client, frame by frame, dropping one armed publish ack."""
        buf = b""
        try:
            while True:
                frame, buf = self._next_frame(src, buf)
                if frame is None:
                    return
                if self._is_ack(frame):
                    with self._lock:
                        drop, self._drop_next_ack = self._drop_next_ack, False
                    if drop:
                        self.dropped += 1
                        continue
                dst.sendall(frame)
        except OSError:
            pass
        finally:
            _shut(src, dst)

    @staticmethod
    def _next_frame(src: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
        def fill(n: int) -> bool:
            nonlocal buf
            while len(buf) < n:
                data = src.recv(65536)
                if not data:
                    return False
                buf += data
            return True

        while b"\r\n" not in buf:
            data = src.recv(65536)
            if not data:
                return None, buf
            buf += data
        end = buf.index(b"\r\n") + 2
        line = buf[:end]
        parts = line.split()
        size = 0
        if parts and parts[0] == b"MSG":
            size = int(parts[-1]) + 2
        elif parts and parts[0] == b"HMSG":
            size = int(parts[-1]) + 2
        if not fill(end + size):
            return None, buf
        return buf[: end + size], buf[end + size :]

    @staticmethod
    def _is_ack(frame: bytes) -> bool:
        if not frame.startswith(b"MSG "):
            return False
        payload = frame[frame.index(b"\r\n") + 2 :]
        return payload.startswith(b'{"stream":') and b'"seq":' in payload


def _shut(*socks: socket.socket) -> None:
    """Shut both directions of each socket down (the other pump then ends too); closed ones are fine."""
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
