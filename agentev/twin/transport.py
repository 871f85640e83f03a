"""Message transports of the twin: an in-process bus (the default) and MQTT.

Both transports have the same small interface (:class:`Transport`): ``publish`` a payload on a
topic, ``subscribe`` a handler to an MQTT topic filter, and ``poll`` to deliver the messages
received so far to their handlers *in the caller's thread*, in arrival order. The twin and the
plant therefore never run handler code concurrently, whichever transport carries the messages.

* :class:`InProcessBus` / :class:`InProcessTransport`: a deterministic "broker" in the same
  process, with no threads and no server. ``publish`` queues the message at every endpoint
  whose subscriptions match it; the endpoints' ``poll`` delivers it.
* :class:`MqttTransport`: a real broker (e.g. Mosquitto) through ``aiomqtt`` (on
  ``paho-mqtt`` 2.x), whose asyncio event loop runs in a background thread.

Topic filters follow MQTT 3.1.1 / 5.0 (:func:`topic_matches`): ``+`` matches one level, a
trailing ``#`` matches any number of levels including none (``a/#`` matches ``a``), and
filters starting with a wildcard do not match topics starting with ``$``.

Example::

    bus = InProcessBus()
    with connect(None, "twin", bus=bus) as twin, connect(None, "plant", bus=bus) as plant:
        twin.subscribe("uagv/v2/+/+/state", lambda topic, payload: print(topic, payload))
        plant.publish("uagv/v2/acme/agv1/state", b"{}")
        twin.poll()  # prints: uagv/v2/acme/agv1/state b'{}'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import socket
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt

__all__ = [
    "DEFAULT_MQTT_PORT",
    "Handler",
    "InProcessBus",
    "InProcessTransport",
    "MqttTransport",
    "Transport",
    "connect",
    "parse_mqtt_url",
    "topic_matches",
]

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
"""A message handler: called with the message's topic and payload."""

DEFAULT_MQTT_PORT = 1883
#: Publishes an MQTT transport keeps unacknowledged before a further one waits.
MAX_IN_FLIGHT = 1000
_URL_FORMS = "'inprocess' (or None) for the in-process bus, or mqtt://host[:port]"
_MAX_TOPIC_BYTES = 65535  # MQTT's limit on a topic name / filter (UTF-8 encoded)


# --------------------------------------------------------------------------- topics


def _check_filter(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` is a valid MQTT topic filter."""
    _check_text(pattern, "topic filter")
    for level in pattern.split("/"):
        if ("#" in level and level != "#") or ("+" in level and level != "+"):
            raise ValueError(
                f"topic filter {pattern!r} is not valid: '+' and '#' must fill a whole level"
            )
    if "#" in pattern and not (pattern == "#" or pattern.endswith("/#")):
        raise ValueError(f"topic filter {pattern!r} is not valid: '#' must be the last level")


def _check_topic(topic: str) -> None:
    """Raise ValueError unless ``topic`` is a valid MQTT topic name (no wildcards)."""
    _check_text(topic, "topic")
    if "+" in topic or "#" in topic:
        raise ValueError(
            f"topic {topic!r} is not valid for a message: '+' and '#' are only for filters"
        )


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty string, got {text!r}")
    if "\0" in text:
        raise ValueError(f"{what} {text!r} must not contain a NUL character")
    if len(text.encode()) > _MAX_TOPIC_BYTES:
        raise ValueError(f"{what} is longer than MQTT's {_MAX_TOPIC_BYTES} bytes")


def _levels_match(pattern_levels: Sequence[str], topic: str) -> bool:
    """Whether a valid filter (split at '/') matches a valid topic name."""
    if topic.startswith("$") and pattern_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    for i, level in enumerate(pattern_levels):
        if level == "#":
            return True  # also matches the parent level: "a/#" matches "a"
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(pattern_levels) == len(topic_levels)


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether the MQTT topic filter ``pattern`` matches the topic name ``topic``.

    Args:
        pattern: A topic filter: levels separated by ``/``; ``+`` matches exactly one level,
            ``#`` (only as the last level) matches any number of levels, including none.
        topic: A topic name (no wildcards).

    Returns:
        True if a subscription to ``pattern`` receives messages published on ``topic``.

    Raises:
        ValueError: ``pattern`` is not a valid filter or ``topic`` not a valid topic name.
    """
    _check_filter(pattern)
    _check_topic(topic)
    return _levels_match(pattern.split("/"), topic)


def _as_payload(payload: bytes) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes, got {type(payload).__name__}: encode text first "
        "(e.g. json.dumps(message).encode())"
    )


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")


# --------------------------------------------------------------------------- interface


@dataclass(frozen=True)
class _Subscription:
    pattern: str
    handler: Handler
    levels: tuple[str, ...]


class Transport(ABC):
    """A connection to a message bus: publish, subscribe, and poll for received messages.

    Handlers run only inside :meth:`poll`, in the thread that calls it. A message is delivered
    once to each distinct handler whose filter matches it (a handler subscribed with two
    matching filters is called once), in the order of subscription. An exception raised by a
    handler propagates out of :meth:`poll`; the messages not yet delivered stay queued.

    Attributes:
        client_id: The name of this endpoint on the bus.
        published: Messages published through this transport.
        received: Messages delivered by :meth:`poll` (each counted once, whatever the number of
            handlers it went to).
    """

    client_id: str
    published: int
    received: int

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.published = 0
        self.received = 0
        # Replaced, never mutated: poll() may read it while another thread subscribes.
        self._subscriptions: tuple[_Subscription, ...] = ()

    @abstractmethod
    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish ``payload`` on ``topic``.

        Args:
            topic: The topic name (no wildcards).
            payload: The message body.
            qos: MQTT quality of service: 0 (at most once), 1 (at least once) or 2.

        Raises:
            ValueError: Invalid topic or qos.
            TypeError: ``payload`` is not bytes.
            ConnectionError: The transport is closed or has lost its connection.
        """

    @abstractmethod
    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Have ``handler(topic, payload)`` called by :meth:`poll` for messages on ``pattern``.

        Args:
            pattern: An MQTT topic filter (``+`` one level, trailing ``#`` any levels).
            handler: Called in the thread that calls :meth:`poll`.

        Raises:
            ValueError: ``pattern`` is not a valid topic filter.
            ConnectionError: The transport is closed or has lost its connection.
        """

    @abstractmethod
    def poll(self, timeout_s: float = 0.0) -> int:
        """Deliver the messages received so far to their handlers, in arrival order.

        Delivers the messages queued when the call starts (messages that arrive meanwhile,
        including those published by the handlers, wait for the next call).

        Args:
            timeout_s: How long to wait for a first message if none is queued, in seconds.

        Returns:
            The number of messages delivered.

        Raises:
            ConnectionError: The transport is closed, or has lost its connection and has no
                message left to deliver.
        """

    @abstractmethod
    def close(self) -> None:
        """Disconnect. Idempotent; queued messages are dropped."""

    def flush(self) -> None:  # noqa: B027 - a no-op unless publishing is asynchronous
        """Wait until every message published so far has left this endpoint."""

    def _add_subscription(self, pattern: str, handler: Handler) -> None:
        _check_filter(pattern)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = _Subscription(pattern, handler, tuple(pattern.split("/")))
        self._subscriptions = (*self._subscriptions, sub)

    def _remove_subscription(self, pattern: str, handler: Handler) -> None:
        """Undo the latest :meth:`_add_subscription` of ``pattern`` and ``handler``."""
        subs = list(self._subscriptions)
        for i in reversed(range(len(subs))):
            if subs[i].pattern == pattern and subs[i].handler == handler:
                del subs[i]
                break
        self._subscriptions = tuple(subs)

    def _wants(self, topic: str) -> bool:
        return any(_levels_match(sub.levels, topic) for sub in self._subscriptions)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        """Call each distinct handler whose filter matches ``topic`` once."""
        called: list[Handler] = []
        for sub in self._subscriptions:
            # `in` compares with ==: bound methods of the same object compare equal.
            if sub.handler not in called and _levels_match(sub.levels, topic):
                called.append(sub.handler)
                sub.handler(topic, payload)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- in-process


class InProcessBus:
    """The broker of the in-process transport: deterministic, no threads, no server.

    Messages go to the endpoints in the order they connected; each endpoint receives them in
    publish order. Not thread-safe: use it from one thread.
    """

    def __init__(self) -> None:
        self._endpoints: list[InProcessTransport] = []

    def connect(self, client_id: str) -> InProcessTransport:
        """A new endpoint on this bus.

        Args:
            client_id: The endpoint's name, unique among the bus's open endpoints.

        Raises:
            ValueError: An open endpoint already has this ``client_id`` (on MQTT, the broker
                would disconnect the older one).
        """
        if any(endpoint.client_id == client_id for endpoint in self._endpoints):
            raise ValueError(
                f"client id {client_id!r} is already connected to this bus: use a unique id"
            )
        endpoint = InProcessTransport(self, client_id)
        self._endpoints.append(endpoint)
        return endpoint

    @property
    def client_ids(self) -> list[str]:
        """The ids of the open endpoints, in connection order."""
        return [endpoint.client_id for endpoint in self._endpoints]

    def _route(self, topic: str, payload: bytes) -> None:
        for endpoint in self._endpoints:
            if endpoint._wants(topic):
                endpoint._inbox.append((topic, payload))

    def _disconnect(self, endpoint: InProcessTransport) -> None:
        self._endpoints.remove(endpoint)


class InProcessTransport(Transport):
    """An endpoint of an :class:`InProcessBus` (create it with :meth:`InProcessBus.connect`).

    ``publish`` queues the message at every open endpoint with a matching subscription,
    including this one; ``qos`` is checked but has no effect (nothing is ever lost). As there
    are no threads, nothing can arrive while ``poll`` waits: it returns at once.
    """

    def __init__(self, bus: InProcessBus, client_id: str) -> None:
        super().__init__(client_id)
        self._bus: InProcessBus | None = bus
        self._inbox: deque[tuple[str, bytes]] = deque()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._bus is None

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:  # noqa: D102
        bus = self._open_bus()
        _check_topic(topic)
        _check_qos(qos)
        bus._route(topic, _as_payload(payload))
        self.published += 1

    def subscribe(self, pattern: str, handler: Handler) -> None:  # noqa: D102
        self._open_bus()
        self._add_subscription(pattern, handler)

    def poll(self, timeout_s: float = 0.0) -> int:  # noqa: D102
        self._open_bus()
        delivered = 0
        for _ in range(len(self._inbox)):
            topic, payload = self._inbox.popleft()
            self.received += 1
            delivered += 1
            self._dispatch(topic, payload)
        return delivered

    def close(self) -> None:  # noqa: D102
        if self._bus is not None:
            self._bus._disconnect(self)
            self._bus = None
            self._inbox.clear()

    def _open_bus(self) -> InProcessBus:
        if self._bus is None:
            raise ConnectionError(f"in-process transport {self.client_id!r} is closed")
        return self._bus


# --------------------------------------------------------------------------- MQTT


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Host and port of a broker URL ``mqtt://host[:port]`` (port 1883 by default).

    Raises:
        ValueError: ``url`` is not of that form.
    """

    def bad(reason: str) -> ValueError:
        return ValueError(
            f"broker URL {url!r} is not valid ({reason}): expected mqtt://host[:port], "
            f"port {DEFAULT_MQTT_PORT} by default"
        )

    if not isinstance(url, str):
        raise bad("not a string")
    parts = urlsplit(url.strip())
    if parts.scheme != "mqtt":
        raise bad(f"scheme {parts.scheme!r} is not 'mqtt'" if parts.scheme else "no scheme")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("it has a path, query or fragment")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials are not supported")
    try:
        port = parts.port
    except ValueError:
        raise bad("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise bad("no host")
    if port == 0:
        raise bad("port 0")
    return parts.hostname, DEFAULT_MQTT_PORT if port is None else port


_LOST = None  # queued by the reader when the connection drops: wakes a waiting poll()


def _no_delay(client: aiomqtt.Client) -> None:
    """Switch Nagle's algorithm off on the client's socket (TCP_NODELAY).

    paho-mqtt leaves it on, so every small MQTT packet waited for the peer's delayed ACK: a
    ping-pong through Mosquitto on loopback took 88 ms instead of 1.8 ms, and a lockstep
    minute of the plant as long. aiomqtt keeps its paho client in ``_client``.
    """
    paho = getattr(client, "_client", None)
    sock = paho.socket() if paho is not None else None
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttTransport(Transport):
    """A connection to an MQTT broker (MQTT 3.1.1, clean session) through ``aiomqtt``.

    An ``aiomqtt.Client`` runs in a background thread with its own asyncio event loop. Received
    messages wait in a queue until :meth:`poll` delivers them in the caller's thread.
    :meth:`publish` and :meth:`subscribe` are thread-safe and block until the broker has
    acknowledged (PUBACK for qos 1, SUBACK), so the messages of one transport reach the broker
    in the order they were published. The broker, not this class, decides how often a message
    matching several of our filters is sent (Mosquitto sends it once); it is then delivered
    once to each distinct matching handler.

    There is no automatic reconnection: after a lost connection, :meth:`publish` and
    :meth:`subscribe` raise ConnectionError, and :meth:`poll` does once the messages received
    before the loss are delivered.

    Args:
        url: ``mqtt://host[:port]`` (port 1883 by default).
        client_id: The MQTT client identifier. It must be unique among the broker's clients:
            a broker disconnects a client when another connects with the same id.
        connect_timeout_s: How long to wait for the broker to accept the connection, in
            seconds; also the limit on each acknowledgement (PUBACK, SUBACK).
        keepalive_s: MQTT keep-alive interval, in seconds.

    Raises:
        ValueError: ``url`` is not an ``mqtt://`` URL.
        ConnectionError: The broker cannot be reached or refused the connection within
            ``connect_timeout_s``.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
    ) -> None:
        super().__init__(client_id)
        self.url = url
        self._host, self._port = parse_mqtt_url(url)
        if connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be > 0 seconds, got {connect_timeout_s}")
        self._timeout_s = float(connect_timeout_s)
        self._keepalive_s = int(keepalive_s)
        self._inbox: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._pending: deque[concurrent.futures.Future] = deque()
        self._broker_filters: set[str] = set()
        self._subscribe_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aiomqtt.Client | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._lost: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)
        self._thread.start()
        # The thread gives up after connect_timeout_s itself; the margin covers its start.
        if not self._ready.wait(self._timeout_s + 2.0):
            self._closed = True
            raise ConnectionError(
                f"MQTT broker at {url} did not accept a connection within {self._timeout_s:g} s"
            )
        if self._startup_error is not None:
            self._closed = True
            self._thread.join(timeout=1.0)
            error = self._startup_error
            reason = "timed out" if isinstance(error, TimeoutError) else str(error)
            raise ConnectionError(
                f"cannot connect to the MQTT broker at {url} ({reason}); is it running? "
                "(Debian: apt-get install mosquitto)"
            ) from error

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def connected(self) -> bool:
        """Whether the connection is open and has not been lost."""
        return not self._closed and self._lost is None and self._thread.is_alive()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Hand ``payload`` to the client's event loop and return (pipelined).

        Messages go out in the order of the calls (the loop starts each publish in turn); the
        broker's acknowledgements are collected in the background, at most
        :data:`MAX_IN_FLIGHT` at a time (a further publish waits for the oldest). A publish
        that failed raises ConnectionError from a later :meth:`publish`, :meth:`flush` or
        :meth:`poll`. Waiting for each PUBACK in turn had limited a lockstep minute to a round
        trip per message (about 1,000 messages/s).
        """
        _check_topic(topic)
        _check_qos(qos)
        data = _as_payload(payload)
        client = self._usable_client()
        self._check_pending(block=len(self._pending) >= MAX_IN_FLIGHT)
        assert self._loop is not None
        coro = client.publish(topic, data, qos=qos, timeout=self._timeout_s)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:  # the loop has ended (connection lost meanwhile)
            coro.close()
            raise ConnectionError(f"cannot publish: the MQTT client at {self.url} ended") from exc
        self._pending.append(future)
        with self._counter_lock:
            self.published += 1

    def _check_pending(self, block: bool = False) -> None:
        """Drop acknowledged publishes; raise ConnectionError for a failed one."""
        pending = self._pending
        while pending and (pending[0].done() or block):
            future = pending.popleft()
            block = False
            try:
                future.result(timeout=self._timeout_s + 2.0)
            except aiomqtt.MqttError as exc:
                raise ConnectionError(
                    f"publish failed on the MQTT broker at {self.url}: {exc}"
                ) from exc
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as exc:
                raise ConnectionError(
                    f"publish on the MQTT broker at {self.url} was not acknowledged within "
                    f"{self._timeout_s:g} s"
                ) from exc

    def flush(self) -> None:
        """Wait until the broker has acknowledged every message published so far.

        Raises:
            ConnectionError: A publish failed or was not acknowledged in time.
        """
        while self._pending:
            self._check_pending(block=True)

    def subscribe(self, pattern: str, handler: Handler) -> None:  # noqa: D102
        _check_filter(pattern)
        client = self._usable_client()
        with self._subscribe_lock:
            # Registered before the broker subscribes, so no message is missed; a filter
            # already subscribed at the broker only gets the new handler.
            self._add_subscription(pattern, handler)
            if pattern in self._broker_filters:
                return
            try:
                codes = self._call(
                    client.subscribe(pattern, qos=1, timeout=self._timeout_s), "subscribe"
                )
            except BaseException:
                self._remove_subscription(pattern, handler)
                raise
            if any(_is_failure(code) for code in codes):
                self._remove_subscription(pattern, handler)
                raise ConnectionError(
                    f"MQTT broker at {self.url} refused the subscription to {pattern!r}"
                )
            self._broker_filters.add(pattern)

    def poll(self, timeout_s: float = 0.0) -> int:  # noqa: D102
        if self._closed:
            raise ConnectionError(f"MQTT transport {self.client_id!r} is closed")
        self._check_pending()
        try:
            item = self._inbox.get_nowait()
        except queue.Empty:
            self._raise_if_lost()  # no point in waiting for a connection that is gone
            if timeout_s <= 0:
                return 0
            try:
                item = self._inbox.get(timeout=timeout_s)
            except queue.Empty:
                self._raise_if_lost()
                return 0
        limit = 1 + self._inbox.qsize()  # what was queued when the call started
        delivered = 0
        while item is not _LOST:
            topic, payload = item
            with self._counter_lock:
                self.received += 1
            delivered += 1
            self._dispatch(topic, payload)
            if delivered >= limit:
                break
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
        if delivered == 0:
            self._raise_if_lost()
        return delivered

    def close(self) -> None:
        """Wait for the outstanding acknowledgements (if connected), then disconnect."""
        if self._closed:
            return
        if self._lost is None:
            with contextlib.suppress(ConnectionError):
                self.flush()
        self._closed = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=self._timeout_s + 5.0)
        if self._thread.is_alive():
            log.warning("MQTT client thread %s did not end", self._thread.name)

    # -- the caller's side

    def _usable_client(self) -> aiomqtt.Client:
        if self._closed:
            raise ConnectionError(f"MQTT transport {self.client_id!r} is closed")
        self._raise_if_lost()
        assert self._client is not None
        return self._client

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise ConnectionError(
                f"lost the connection to the MQTT broker at {self.url}: {self._lost}"
            ) from self._lost

    def _call(self, coro: Coroutine[Any, Any, Any], what: str) -> Any:
        """Run ``coro`` on the client's event loop and wait for its result."""
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:  # the loop has ended (connection lost meanwhile)
            coro.close()
            raise ConnectionError(f"cannot {what}: the MQTT client at {self.url} ended") from exc
        try:
            return future.result(timeout=self._timeout_s + 2.0)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"{what} failed on the MQTT broker at {self.url}: {exc}") from exc
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as exc:
            future.cancel()
            raise ConnectionError(
                f"{what} on the MQTT broker at {self.url} was not acknowledged within "
                f"{self._timeout_s:g} s"
            ) from exc

    # -- the client thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                self._lost = self._lost or exc
                self._inbox.put(_LOST)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self.client_id,
            timeout=self._timeout_s,
            keepalive=self._keepalive_s,
        )
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await stack.enter_async_context(client)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                self._startup_error = exc
                self._ready.set()
                return
            _no_delay(client)
            # publishes are pipelined (up to MAX_IN_FLIGHT): not a warning sign here
            client.pending_calls_threshold = MAX_IN_FLIGHT
            self._client = client
            reader = asyncio.create_task(self._read(client))
            stopped = asyncio.create_task(self._stop.wait())
            self._ready.set()
            await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._lost is None:
                try:
                    await stack.aclose()  # a clean DISCONNECT
                except aiomqtt.MqttError as exc:
                    log.debug("MQTT disconnect from %s: %s", self.url, exc)

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes):
                    payload = b"" if payload is None else str(payload).encode()
                self._inbox.put((message.topic.value, payload))
        except aiomqtt.MqttError as exc:
            log.warning("lost the connection to the MQTT broker at %s: %s", self.url, exc)
            self._lost = exc
            self._inbox.put(_LOST)


def _is_failure(code: object) -> bool:
    """Whether a SUBACK reason code (paho ReasonCode or MQTT 3.1.1 int) is a failure."""
    is_failure = getattr(code, "is_failure", None)
    if is_failure is not None:
        return bool(is_failure)
    return isinstance(code, int) and code >= 0x80


# --------------------------------------------------------------------------- factory


def connect(url: str | None, client_id: str, bus: InProcessBus | None = None) -> Transport:
    """Open a transport by URL.

    Args:
        url: None or ``"inprocess"`` for an endpoint of ``bus``; ``mqtt://host[:port]`` for
            an :class:`MqttTransport` (default connect timeout and keep-alive).
        client_id: The endpoint's name (unique on the bus or broker).
        bus: The in-process bus; required when ``url`` is None or ``"inprocess"``.

    Raises:
        ValueError: An unknown URL form, or no ``bus`` for the in-process transport.
        ConnectionError: The MQTT broker cannot be reached.
    """
    if url is None or url == "inprocess":
        if bus is None:
            raise ValueError(
                "the in-process transport needs a bus: connect(None, client_id, "
                "bus=InProcessBus()), shared by all endpoints that talk to each other"
            )
        return bus.connect(client_id)
    if isinstance(url, str) and url.strip().lower().startswith("mqtt://"):
        return MqttTransport(url, client_id)
    raise ValueError(f"unknown transport URL {url!r}: use {_URL_FORMS}")
