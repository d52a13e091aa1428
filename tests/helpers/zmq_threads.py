"""A ZMQ socket bound on a free loopback port and served by a thread, for stand-ins of a
broker or a publisher; ``stop()`` joins the thread and frees the socket and its context."""

from __future__ import annotations

import threading

import zmq

from avoviirscollector.netutil import free_port


class SocketThread:
    """Binds a ``socket_type`` socket on a free port and calls ``serve_once()`` until stopped.

    Subclasses implement ``serve_once()``, which should return within about 50 ms (poll
    with a timeout) so that ``stop()`` is prompt.
    """

    def __init__(self, socket_type: int):
        self.port = free_port()
        self._context = zmq.Context()
        self._socket = self._context.socket(socket_type)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(f"tcp://127.0.0.1:{self.port}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.serve_once()

    def serve_once(self):
        raise NotImplementedError

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)
        self._context.term()


class Publisher(SocketThread):
    """A PUB that sends ``frames()`` (a list of multipart messages) every ``interval`` seconds,
    so a slow-joining subscriber still receives them."""

    def __init__(self, frames, interval: float = 0.05):
        self._frames = frames
        self._interval = interval
        super().__init__(zmq.PUB)

    def serve_once(self):
        if not self._stop.wait(self._interval):
            for frames in self._frames():
                self._socket.send_multipart(frames)
