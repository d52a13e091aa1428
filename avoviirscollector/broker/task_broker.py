"""task_broker: turn granule messages into tasks, once each, and hand them to workers.

Granule messages from the segment_gatherers (``/AVO/viirs/granule/<product>``)
arrive through the nameserver; the queue lives in SQLite (task_store.py) with the
rules of task_rules.py. Workers ask on ``VIIRS_TASK_PORT`` (19091) with the original
protocol; monitors read the queue state on ``VIIRS_STATE_PORT`` (19191) every second.

The task port is a ZMQ ROUTER socket, which a worker's REQ socket cannot tell from
the original REP: it lets the broker read every waiting request, answer them all
under one committed transaction (one fsync for many hand-outs) and never wedge on a
bad request. It also tells when a worker went away before its reply could be sent;
that task goes back to the head of the queue instead of being lost.

One thread owns the database and the sockets; the posttroll subscriber runs in a
thread of its own and passes granules over an inproc socket. That thread never
waits on a peer: replies are sent without blocking, and a peer whose replies pile
up unread (a DEALER that floods requests and never reads) loses its own replies,
logged once per connection, while every other worker is served and granules keep
coming in. A frame over the request limit is refused by libzmq (ZMQ_MAXMSGSIZE)
before it is buffered: that connection is closed and nothing of it is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import zmq

from avoviirscollector import bus, identity, last_seen, liveness, logs, settings
from avoviirscollector.broker.task_rules import (
    MAX_REQUEST_BYTES,
    GranuleError,
    RequestError,
    TaskRequest,
    granule_from_message,
)
from avoviirscollector.broker.task_rules import parse_request as parse_task_request
from avoviirscollector.broker.task_store import (
    DB_NAME,
    HANDED_OUT_MEMORY,
    Added,
    QueueReader,
    Task,
    TaskStore,
    open_store,
)

GRANULE_TOPIC = "/AVO/viirs/granule"
#: Requests answered under one commit at most.
MAX_BATCH = 64
#: Replies queued for one peer at most. A worker's REQ socket waits for each reply, so
#: it never has more than one; a peer that lets this many pile up does not read them.
REPLY_HWM = 100
#: Peers remembered for "logged once per connection" (oldest forgotten first).
PEERS_REMEMBERED = 1024
#: Seconds between two requests served of a peer whose replies wait unread (the others
#: are dropped unread, costing it its replies and the broker next to nothing).
UNREAD_RETRY = 1.0
#: Seconds between two queue-state messages.
STATE_INTERVAL = 1.0
#: Seconds without requests or granules after which the WAL is checkpointed.
CHECKPOINT_IDLE = 0.5
#: Under sustained load, checkpoint at least this often (bounds the WAL's size).
CHECKPOINT_EVERY = 60.0
#: Seconds between two looks for expired leases.
LEASE_CHECK_INTERVAL = 0.1
#: Seconds between two clean-ups of the handed-out memory.
FORGET_INTERVAL = 600.0
#: Seconds between two attempts to subscribe while the nameserver does not answer.
SUBSCRIBE_RETRY = 3.0
_GRANULE_PIPE = "inproc://granules"

log = logging.getLogger("task_broker")


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GranuleListener(threading.Thread):
    """Receives granule messages from every gatherer, whenever it starts or restarts."""

    def __init__(self, context: zmq.Context):
        super().__init__(name="granule-listener", daemon=True)
        self.context = context
        self.stopping = threading.Event()

    def run(self) -> None:
        """Forward (subject, type, data) of each granule message to the broker's loop.

        Without a nameserver posttroll cannot subscribe: the queue is still served,
        and subscribing is retried until the nameserver answers.
        """
        push = self.context.socket(zmq.PUSH)
        push.connect(_GRANULE_PIPE)
        try:
            while not self.stopping.is_set():
                try:
                    self._forward(push)
                except Exception as error:  # posttroll raises bare TimeoutError and others
                    log.warning(
                        "cannot subscribe to granule messages (%s: %s); queued tasks are still "
                        "served, retrying in %g s",
                        type(error).__name__,
                        error,
                        SUBSCRIBE_RETRY,
                    )
                    self.stopping.wait(SUBSCRIBE_RETRY)
        finally:
            push.close(linger=1000)

    def _forward(self, push: zmq.Socket) -> None:
        with bus.subscribe(GRANULE_TOPIC) as subscriber:
            log.info("listening to %s through the nameserver", GRANULE_TOPIC)
            for message in subscriber.recv(timeout=0.5):
                if self.stopping.is_set():
                    return
                if message is not None:
                    push.send_pyobj((message.subject, message.type, message.data))


class Monitor(threading.Thread):
    """Publishes the queue state every second and checkpoints the WAL, off the serving thread.

    A checkpoint writes and fsyncs the database file, and on this kind of disk that stalls
    the serving thread's commits by 10-50 ms. So it runs when the broker has been idle
    for CHECKPOINT_IDLE seconds, and under sustained load once every CHECKPOINT_EVERY
    seconds (which bounds the WAL); the durability of commits does not depend on it.
    """

    def __init__(self, path, pub: zmq.Socket, activity: Activity):
        super().__init__(name="queue-monitor", daemon=True)
        self.path = path
        self.pub = pub
        self.activity = activity
        self.stopping = threading.Event()
        self.checkpointed = time.monotonic()
        self.extra: dict = {}  # keys added to every state message (the collector's identity)

    def run(self) -> None:
        """Every STATE_INTERVAL: publish the committed state, then checkpoint if it is time."""
        reader = QueueReader(self.path)
        try:
            while not self.stopping.wait(STATE_INTERVAL - time.monotonic() % STATE_INTERVAL):
                try:
                    self.pub.send_json({**reader.state(), **self.extra})
                    self._checkpoint_when_quiet(reader)
                except sqlite3.Error as error:
                    log.error("cannot read the queue for its state message: %s", error)
        finally:
            reader.close()
            self.pub.close(linger=0)

    def _checkpoint_when_quiet(self, reader: QueueReader) -> None:
        now = time.monotonic()
        if checkpoint_due(now, self.activity.last, self.checkpointed):
            reader.checkpoint()
            self.checkpointed = now


class Activity:
    """When the serving thread last did work (read by the monitor thread)."""

    def __init__(self):
        self.last = time.monotonic()

    def touch(self) -> None:
        """Note work done now (a float store: atomic under the GIL)."""
        self.last = time.monotonic()


def checkpoint_due(now: float, last_activity: float, last_checkpoint: float) -> bool:
    """Checkpoint when idle for CHECKPOINT_IDLE s, or when CHECKPOINT_EVERY s have passed."""
    if now - last_checkpoint < STATE_INTERVAL:
        return False
    return now - last_activity >= CHECKPOINT_IDLE or now - last_checkpoint >= CHECKPOINT_EVERY


class OncePer:
    """Remembers what was logged already (a peer, a peer and a reason), so that one
    connection repeating itself costs one log line, not one per message.

    Bounded: the least recently seen of :data:`PEERS_REMEMBERED` keys is forgotten.
    """

    def __init__(self, size: int = PEERS_REMEMBERED):
        self.size = size
        self._seen: OrderedDict = OrderedDict()

    def first(self, key) -> bool:
        """True the first time ``key`` is seen (again after being forgotten)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class UnreadPeers:
    """Peers whose replies wait unread: their requests are dropped before any work, but
    one a second is served, so a peer that reads again is served again."""

    def __init__(self, size: int = PEERS_REMEMBERED, retry: float = UNREAD_RETRY):
        self.retry = retry
        self.logged = OncePer(size)
        self._since: OrderedDict[bytes, float] = OrderedDict()
        self.size = size

    def mark(self, identity: bytes, now: float) -> bool:
        """A reply to ``identity`` could not be queued; True the first time (log it)."""
        self._since[identity] = now
        self._since.move_to_end(identity)
        if len(self._since) > self.size:
            self._since.popitem(last=False)
        return self.logged.first(identity)

    def skip(self, identity: bytes, now: float) -> bool:
        """True: drop this request unserved (its peer reads nothing, it was tried lately)."""
        since = self._since.get(identity)
        return since is not None and now - since < self.retry

    def reads(self, identity: bytes) -> None:
        """A reply to ``identity`` was queued: serve it as everyone else."""
        self._since.pop(identity, None)


@dataclass
class _Answer:
    """A reply and what to log once it is committed."""

    reply: bytes
    task: Task | None = None
    notes: list[tuple[int, str, tuple]] = field(default_factory=list)
    #: why the request was refused (logged once per connection and reason)
    refused: str = ""

    def note(self, level: int, text: str, *args) -> _Answer:
        self.notes.append((level, text, args))
        return self


def _refusal(reason: str) -> _Answer:
    return _Answer(b"error: " + reason.encode("utf-8"), refused=reason)


class Broker:
    """The broker's sockets and loop; :meth:`run` returns when asked to stop."""

    def __init__(self, config: settings.Settings, store: TaskStore):
        self.store = store
        self.context = zmq.Context()
        self.stopping = threading.Event()
        self.stopped_by = ""
        self.pull = self.context.socket(zmq.PULL)
        self.pull.bind(_GRANULE_PIPE)
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # tells when a worker went away
        self.router.setsockopt(zmq.SNDTIMEO, 0)  # never wait for one peer (see _send)
        self.router.setsockopt(zmq.SNDHWM, REPLY_HWM)
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        self.router.bind(f"tcp://{config.listen_address}:{config.task_port}")
        self.pub = self.context.socket(zmq.PUB)
        self.pub.bind(f"tcp://{config.listen_address}:{config.state_port}")
        for sock in (self.pull, self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.router, zmq.POLLIN)
        self.listener = GranuleListener(self.context)
        self.unread = UnreadPeers()  # peers whose replies pile up unread
        self.logged = OncePer()  # (peer, what) already logged: refusals, bad envelopes
        store.checkpoint_elsewhere()
        self.activity = Activity()
        self.monitor = Monitor(store.path, self.pub, self.activity)
        self.monitor.extra = {identity.KEY: identity.of(config)}  # which collector answers
        self.sdr_dir = config.sdr_dir
        #: what the replays after an outage start from (last_seen.py)
        self.seen = last_seen.Recorder(config.state_dir, HANDED_OUT_MEMORY)

    # --- granules -------------------------------------------------------------------

    def _ingest(self) -> None:
        """Store every granule waiting in the pipe under one commit, then log them."""
        added: list[Added] = []
        try:
            with self.store.transaction():
                while len(added) < 500:
                    try:
                        subject, atype, data = self.pull.recv_pyobj(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    item = self._add(subject, atype, data)
                    if item is not None:
                        added.append(item)
        except Exception:
            log.exception("could not save %d granules; they are not queued", len(added))
            return
        for item in added:
            _log_added(item)
            self.seen.saw(
                item.granule.product, (d.get("uri") for d in item.granule.data["dataset"])
            )

    def _add(self, subject: str, atype: str, data) -> Added | None:
        if not identity.from_own_sdr(data, self.sdr_dir):
            return None  # another collector's files (shared posttroll ports)
        try:
            return self.store.add(granule_from_message(subject, atype, data))
        except GranuleError as error:
            log.error("dropped granule message %s: %s (data: %.300r)", subject, error, data)
        except Exception:
            log.exception("could not queue granule message %s (data: %.300r)", subject, data)
        return None

    # --- requests -------------------------------------------------------------------

    def _serve(self) -> None:
        """Answer every waiting request; commit once, then send the replies."""
        batch = []
        now = time.monotonic()
        while len(batch) < MAX_BATCH:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if self.unread.skip(frames[0].bytes, now):
                continue
            envelope, body, peer = _split(frames, self.logged)
            if envelope is not None:
                batch.append((envelope, body, peer))
        answers = []
        try:
            with self.store.transaction(fsync=False):
                answers = [self._answer(body, peer) for _, body, peer in batch]
        except Exception:
            log.exception("could not record the answers to %d requests; none was handed out")
            answers = [_Answer(b"error: the broker could not record the hand-out")] * len(batch)
        for (envelope, _, peer), answer in zip(batch, answers, strict=True):
            if answer.refused and self.logged.first((envelope[0], answer.refused)):
                log.warning(
                    "refused a request from %s: %s (logged once per connection)",
                    peer,
                    answer.refused,
                )
            for level, text, args in answer.notes:
                log.log(level, text, *args)
            self._send(envelope, answer, peer)

    def _send(self, envelope: list[bytes], answer: _Answer, peer: str) -> None:
        """Send without waiting: a peer that does not read loses its reply, nobody else.

        EAGAIN: the peer's REPLY_HWM replies wait unread. EHOSTUNREACH: it went away.
        Either way a task handed out with that reply goes back to the head of the queue.
        """
        try:
            self.router.send_multipart([*envelope, answer.reply], zmq.NOBLOCK)
        except zmq.Again:
            self._unread(envelope[0], answer, peer)
            return
        except zmq.ZMQError as error:
            if answer.task is None:
                log.warning("could not reply to %s (%s)", peer, error)
                return
            self.store.put_back(answer.task)
            log.warning(
                "worker %s went away before it got %s; it is back at the head of the queue",
                peer,
                answer.task.describe(),
            )
            return
        self.unread.reads(envelope[0])

    def _unread(self, peer_id: bytes, answer: _Answer, peer: str) -> None:
        if answer.task is not None:
            self.store.put_back(answer.task)
        if self.unread.mark(peer_id, time.monotonic()):
            log.warning(
                "%s (connection %s) does not read its replies: its requests are dropped while "
                "%d wait unread (logged once per connection)",
                peer,
                peer_id.hex(),
                REPLY_HWM,
            )

    def _answer(self, body: bytes | None, peer: str) -> _Answer:
        if body is None:
            return _refusal("a request is one message frame")
        try:
            request = parse_task_request(body)
        except RequestError as error:
            return _refusal(str(error))
        try:
            with self.store.transaction():
                return self._fulfil(request, peer)
        except Exception as error:
            log.exception("failed to answer %s from %s", request, peer)
            return _Answer(f"error: the broker failed on this request ({error})".encode())

    def _fulfil(self, request: TaskRequest, peer: str) -> _Answer:
        answer = _Answer(b"")
        if request.ack is not None:
            acked = self.store.ack(request.ack)
            if acked is None:
                return _refusal(
                    f"task id {request.ack} holds no lease (unknown, or its lease expired "
                    "and the task went back to the queue)"
                )
            answer.note(logging.INFO, "%s acknowledged by %s: done", acked.describe(), peer)
            if not request.products:
                answer.reply = b"ok"
                return answer
        if request.just_testing:  # a peek: no log line (monitors poll all day)
            task = self.store.next_task(request.products)
            answer.reply = b"" if task is None else task.reply()
            return answer
        task = self.store.take(request.products, request.lease)
        if task is None:
            return answer
        answer.reply, answer.task = task.reply(), task
        if task.lease_id is None:
            return answer.note(logging.INFO, "handed out %s to %s", task.describe(), peer)
        return answer.note(
            logging.INFO,
            "handed out %s to %s, lease %s for %g s",
            task.describe(),
            peer,
            task.lease_id,
            request.lease,
        )

    # --- timers ---------------------------------------------------------------------

    def _expire_leases(self) -> None:
        for task in self.store.expire_leases():
            log.warning(
                "lease %s expired without an ack: %s is back at the head of the queue",
                task.lease_id,
                task.describe(),
            )

    def _forget(self) -> None:
        forgotten = self.store.forget_handed_out()
        if forgotten:
            log.info("forgot %d granules handed out long ago", forgotten)

    # --- the loop -------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until the granule listener dies (1)."""
        self.listener.start()
        self.monitor.start()
        now = time.monotonic()
        due = {"leases": now, "forget": now, "seen": now}
        timers = {
            "leases": (LEASE_CHECK_INTERVAL, self._expire_leases),
            "forget": (FORGET_INTERVAL, self._forget),
            "seen": (last_seen.SAVE_INTERVAL, self.seen.save),
        }
        while not self.stopping.is_set():
            wait = max(0.0, min(due.values()) - time.monotonic())
            events = dict(self.poller.poll(timeout=wait * 1000))
            if self.pull in events:
                self._ingest()
            if self.router in events:
                self._serve()
            if events:
                self.activity.touch()
            now = time.monotonic()
            for name, (interval, action) in timers.items():
                if now >= due[name]:
                    action()
                    due[name] = now + interval
            if not (self.listener.is_alive() and self.monitor.is_alive()):
                log.critical("a thread of the broker stopped; exiting so supervisord restarts me")
                return 1
        return 0

    def close(self) -> None:
        """Stop the listener, keep the granules it passed on, close sockets and database."""
        self.listener.stopping.set()
        self.monitor.stopping.set()
        self.listener.join(timeout=5)
        self.monitor.join(timeout=5)
        self._ingest()
        self.seen.save()
        self.context.destroy(linger=0)
        self.store.close()


def _split(frames: list, logged: OncePer) -> tuple[list[bytes] | None, bytes | None, str]:
    """(envelope, body, peer address) of a request received on the ROUTER socket.

    A REQ socket sends [identity, b"", body]; without the empty delimiter no reply
    could reach it (a REP socket drops such messages too): dropped, logged once per
    connection.
    """
    try:
        peer = frames[-1].get("Peer-Address")
    except (zmq.ZMQError, AttributeError):
        peer = "a worker"
    parts = [frame.bytes for frame in frames]
    if b"" not in parts[1:]:
        if logged.first((parts[0], "envelope")):
            log.warning(
                "dropped a message from %s without a REQ envelope (logged once per connection)",
                peer,
            )
        return None, None, peer
    cut = parts.index(b"", 1) + 1
    body = parts[cut] if len(parts) == cut + 1 else None
    return parts[:cut], body, peer


def _log_added(added: Added) -> None:
    """One line per granule, naming its files' stem (under 200 characters)."""
    granule, task = added.granule, added.task
    why = f" (reprocess {granule.reprocess:.40})" if granule.reprocess else ""
    if added.outcome == "queued":
        log.info("queued %s%s", task.describe(), why)
    elif added.outcome == "merged" and added.files_added:
        log.info(
            "merged granule %s into task %d (+%d files, %d in all; it keeps its place)%s",
            granule.describe(),
            task.id,
            added.files_added,
            task.files,
            why,
        )
    elif added.outcome == "merged":
        log.info("granule %s published again: in task %d already", granule.describe(), task.id)
    elif added.outcome == "replay":
        log.info(
            "ignored granule %s: handed out at %s (published again)",
            granule.describe(),
            _utc(added.handed_out_at),
        )
    else:
        log.info(
            "ignored granule %s: in task %d, leased to a worker (back if the lease expires)",
            granule.describe(),
            task.id,
        )


def main(argv: list[str] | None = None) -> int:
    """Run the task broker until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="task_broker",
        description="Queue a task per granule and hand tasks to workers (ports from "
        "VIIRS_TASK_PORT and VIIRS_STATE_PORT, queue under VIIRS_BASE_DIR/state).",
    )
    parser.parse_args(argv)
    config = settings.load_or_exit()
    logs.setup("task_broker", config, daemon=True)
    liveness.start(config.base_dir, "task_broker")
    path = config.state_dir / DB_NAME
    store = open_store(path, log, stale_hours=config.stale_task_hours)
    try:
        broker = Broker(config, store)
    except zmq.ZMQError as error:
        log.error(
            "cannot listen on ports %d/%d: %s; exiting", config.task_port, config.state_port, error
        )
        store.close()
        return 1

    def stop(signum, _frame):
        broker.stopped_by = signal.Signals(signum).name
        broker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = store.state()
    log.info(
        "serving tasks on port %d, queue state on port %d; queue %s holds %d waiting "
        "and %d leased tasks",
        config.task_port,
        config.state_port,
        path,
        state["queue length"],
        state["tasks leased"],
    )
    try:
        status = broker.run()
    finally:
        broker.close()
    log.info("stopped (%s); the queue is saved in %s", broker.stopped_by or "error", path)
    return status


if __name__ == "__main__":
    sys.exit(main())
