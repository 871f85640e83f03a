"""The twin's transports: MQTT topic filters, the in-process bus, and MQTT via Mosquitto.

The MQTT tests talk to a real broker of their own (the ``mqtt_broker`` fixture starts
``/usr/sbin/mosquitto`` on a free port); nothing is mocked.
"""

from __future__ import annotations

import threading
import time

import pytest

from agentev.twin.transport import (
    InProcessBus,
    InProcessTransport,
    MqttTransport,
    Transport,
    connect,
    parse_mqtt_url,
    topic_matches,
)
from tests import mqtt_broker as mqtt_broker_module
from tests.mqtt_broker import free_port, start_broker, stop_broker


class Inbox:
    """A handler that records what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.messages]


def poll_until(transport: Transport, count: int, inbox: Inbox, timeout_s: float = 10.0) -> None:
    """Poll until ``inbox`` holds ``count`` messages (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while len(inbox.messages) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"received {len(inbox.messages)} of {count} messages in {timeout_s} s")
        transport.poll(timeout_s=0.2)


# --------------------------------------------------------------------------- topic filters


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("uagv/v2/acme/agv1/state", "uagv/v2/acme/agv1/state", True),
        ("uagv/v2/acme/agv1/state", "uagv/v2/acme/agv2/state", False),
        ("uagv/v2/+/+/state", "uagv/v2/acme/agv1/state", True),
        ("uagv/v2/+/+/state", "uagv/v2/acme/agv1/connection", False),
        ("uagv/v2/+/state", "uagv/v2/acme/agv1/state", False),  # '+' is exactly one level
        ("uagv/#", "uagv/v2/acme/agv1/state", True),
        ("uagv/#", "uagv", True),  # '#' also matches the parent level
        ("uagv/#", "uagvx/v2", False),
        ("#", "anything/at/all", True),
        ("+", "one", True),
        ("+", "one/two", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),  # an empty level is a level
        ("+/+", "/a", True),
        ("/+", "/a", True),
        ("a", "A", False),  # topics are case-sensitive
        ("#", "$SYS/broker/uptime", False),  # wildcards at the start skip $-topics
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
    ],
)
def test_topic_filters_follow_mqtt(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern", ["", "a/#/b", "a#", "a/b#", "a+/b", "a/+b", "##"])
def test_invalid_topic_filters_are_rejected(pattern: str) -> None:
    with pytest.raises(ValueError, match="topic filter|non-empty"):
        topic_matches(pattern, "a/b")


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "a\0b"])
def test_topic_names_cannot_hold_wildcards(topic: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        topic_matches("#", topic)


# --------------------------------------------------------------------------- in-process bus


def test_in_process_messages_arrive_in_publish_order() -> None:
    bus = InProcessBus()
    twin, plant = bus.connect("twin"), bus.connect("plant")
    inbox = Inbox()
    twin.subscribe("uagv/v2/+/+/state", inbox)
    for i in range(100):
        plant.publish(f"uagv/v2/acme/agv{i % 3}/state", str(i).encode())

    assert inbox.messages == []  # nothing is delivered before poll()
    assert twin.poll() == 100
    assert inbox.payloads == [str(i).encode() for i in range(100)]
    assert (plant.published, twin.received) == (100, 100)
    assert twin.poll() == 0


def test_in_process_fan_out_reaches_every_matching_endpoint_only() -> None:
    bus = InProcessBus()
    plant = bus.connect("plant")
    twins = [bus.connect(f"twin{i}") for i in range(3)]
    inboxes = [Inbox() for _ in twins]
    for twin, inbox in zip(twins, inboxes, strict=True):
        twin.subscribe("uagv/v2/acme/+/state", inbox)
    other = bus.connect("other")
    other_inbox = Inbox()
    other.subscribe("uagv/v2/acme/+/connection", other_inbox)

    plant.publish("uagv/v2/acme/agv1/state", b"s")

    assert [twin.poll() for twin in twins] == [1, 1, 1]
    assert all(inbox.messages == [("uagv/v2/acme/agv1/state", b"s")] for inbox in inboxes)
    assert other.poll() == 0 and other_inbox.messages == []


def test_in_process_publisher_hears_itself_only_when_subscribed() -> None:
    bus = InProcessBus()
    plant, twin = bus.connect("plant"), bus.connect("twin")
    twin_inbox = Inbox()
    twin.subscribe("#", twin_inbox)
    plant.publish("a/b", b"1")
    assert plant.poll() == 0

    plant_inbox = Inbox()
    plant.subscribe("a/+", plant_inbox)
    plant.publish("a/b", b"2")
    assert plant.poll() == 1
    assert plant_inbox.payloads == [b"2"]
    assert twin.poll() == 2 and twin_inbox.payloads == [b"1", b"2"]


def test_a_message_matching_several_filters_is_delivered_once_per_endpoint() -> None:
    bus = InProcessBus()
    plant, twin = bus.connect("plant"), bus.connect("twin")
    state_inbox, everything = Inbox(), Inbox()
    twin.subscribe("uagv/#", everything)
    twin.subscribe("uagv/v2/+/+/state", everything)  # same handler again: still called once
    twin.subscribe("uagv/v2/acme/agv1/state", state_inbox)
    twin.subscribe("uagv/v2/+/agv1/state", state_inbox)

    plant.publish("uagv/v2/acme/agv1/state", b"s")
    plant.publish("uagv/v2/acme/agv1/connection", b"c")

    assert twin.poll() == 2
    assert twin.received == 2
    assert everything.payloads == [b"s", b"c"]
    assert state_inbox.payloads == [b"s"]


def test_in_process_poll_delivers_only_what_was_queued_when_it_started() -> None:
    bus = InProcessBus()
    echo = bus.connect("echo")
    inbox = Inbox()

    def reply(topic: str, payload: bytes) -> None:
        inbox(topic, payload)
        echo.publish("ping", payload + b"!")  # a handler publishing to itself

    echo.subscribe("ping", reply)
    echo.publish("ping", b"x")
    assert echo.poll() == 1
    assert echo.poll() == 1
    assert inbox.payloads == [b"x", b"x!"]


def test_in_process_poll_does_not_wait_for_nothing() -> None:
    bus = InProcessBus()
    twin = bus.connect("twin")
    start = time.monotonic()
    assert twin.poll(timeout_s=5.0) == 0
    assert time.monotonic() - start < 1.0


def test_in_process_rejects_bad_input_with_clear_errors() -> None:
    bus = InProcessBus()
    twin = bus.connect("twin")
    with pytest.raises(ValueError, match="already connected"):
        bus.connect("twin")
    with pytest.raises(TypeError, match="payload must be bytes"):
        twin.publish("a", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qos"):
        twin.publish("a", b"", qos=3)
    with pytest.raises(ValueError, match="only for filters"):
        twin.publish("a/+", b"")
    with pytest.raises(ValueError, match="topic filter"):
        twin.subscribe("a/#/b", Inbox())


def test_a_closed_in_process_endpoint_leaves_the_bus() -> None:
    bus = InProcessBus()
    with bus.connect("twin") as twin, bus.connect("plant") as plant:
        twin.subscribe("#", Inbox())
        plant.publish("a", b"1")
        twin.close()
        twin.close()  # idempotent
        assert twin.closed and bus.client_ids == ["plant"]
        plant.publish("a", b"2")  # nobody listens: no error
        with pytest.raises(ConnectionError, match="closed"):
            twin.publish("a", b"3")
        with pytest.raises(ConnectionError, match="closed"):
            twin.poll()
    assert bus.client_ids == []
    assert isinstance(bus.connect("twin"), InProcessTransport)  # the id is free again


def test_connect_picks_the_transport_from_the_url() -> None:
    bus = InProcessBus()
    assert isinstance(connect(None, "a", bus=bus), InProcessTransport)
    assert isinstance(connect("inprocess", "b", bus=bus), InProcessTransport)
    assert bus.client_ids == ["a", "b"]
    with pytest.raises(ValueError, match="needs a bus"):
        connect(None, "c")
    with pytest.raises(ValueError, match=r"'tcp://x'.*mqtt://host\[:port\]"):
        connect("tcp://x", "c")


# --------------------------------------------------------------------------- MQTT


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884)),
        ("mqtt://broker.example", ("broker.example", 1883)),
        ("mqtt://localhost/", ("localhost", 1883)),
        ("mqtt://[::1]:1885", ("::1", 1885)),
    ],
)
def test_broker_urls_give_host_and_port(url: str, expected: tuple[str, int]) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:1883",
        "http://127.0.0.1",
        "mqtt://",
        "mqtt://h:port",
        "mqtt://h:70000",
        "mqtt://h/topic",
        "mqtt://u:p@h",
        "mqtts://h",
    ],
)
def test_bad_broker_urls_raise_value_error_naming_the_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"mqtt://host\[:port\]") as error:
        MqttTransport(url, "twin")
    assert repr(url) in str(error.value)


def test_an_unreachable_broker_raises_connection_error_quickly() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=url):
        MqttTransport(url, "twin", connect_timeout_s=2)
    assert time.monotonic() - start < 4.0


def test_a_thousand_qos1_messages_arrive_complete_and_in_order(mqtt_broker: str) -> None:
    with (
        MqttTransport(mqtt_broker, "order-twin") as twin,
        MqttTransport(mqtt_broker, "order-plant") as plant,
    ):
        inbox = Inbox()
        twin.subscribe("order/uagv/v2/acme/+/state", inbox)
        for i in range(1000):
            plant.publish(f"order/uagv/v2/acme/agv{i % 7}/state", f"{i}".encode(), qos=1)
        poll_until(twin, 1000, inbox)

        assert inbox.payloads == [f"{i}".encode() for i in range(1000)]
        assert inbox.messages[8] == ("order/uagv/v2/acme/agv1/state", b"8")
        assert (plant.published, twin.received) == (1000, 1000)
        assert twin.poll() == 0


def test_mqtt_wildcards_route_each_message_once_per_handler(mqtt_broker: str) -> None:
    with (
        MqttTransport(mqtt_broker, "wild-twin") as twin,
        MqttTransport(mqtt_broker, "wild-plant") as plant,
    ):
        states, everything, agv1 = Inbox(), Inbox(), Inbox()
        twin.subscribe("wild/uagv/v2/+/+/state", states)
        twin.subscribe("wild/uagv/#", everything)
        twin.subscribe("wild/uagv/v2/+/+/state", everything)  # same handler: called once
        twin.subscribe("wild/uagv/v2/acme/agv1/#", agv1)
        plant.publish("wild/uagv/v2/acme/agv1/state", b"s1")
        plant.publish("wild/uagv/v2/acme/agv2/state", b"s2")
        plant.publish("wild/uagv/v2/acme/agv1/connection", b"c1")
        plant.publish("wild/uagv", b"root")  # '#' matches the parent level
        plant.publish("wild/other/v2/acme/agv1/state", b"x")  # matches nothing
        poll_until(twin, 4, everything)

        assert states.payloads == [b"s1", b"s2"]
        assert everything.payloads == [b"s1", b"s2", b"c1", b"root"]
        assert agv1.payloads == [b"s1", b"c1"]
        assert twin.poll(timeout_s=0.3) == 0  # nothing else arrives
        assert twin.received == 4


def test_mqtt_poll_waits_for_the_first_message(mqtt_broker: str) -> None:
    with (
        MqttTransport(mqtt_broker, "wait-twin") as twin,
        MqttTransport(mqtt_broker, "wait-plant") as plant,
    ):
        inbox = Inbox()
        twin.subscribe("wait/#", inbox)
        start = time.monotonic()
        assert twin.poll(timeout_s=0.3) == 0
        assert time.monotonic() - start >= 0.25

        later = threading.Timer(0.2, plant.publish, args=("wait/a", b"late"))
        later.start()
        start = time.monotonic()
        assert twin.poll(timeout_s=5.0) == 1
        assert time.monotonic() - start < 3.0
        later.join()
        assert inbox.payloads == [b"late"]


def test_mqtt_publisher_hears_itself_when_subscribed(mqtt_broker: str) -> None:
    with MqttTransport(mqtt_broker, "self-talk") as endpoint:
        inbox = Inbox()
        endpoint.subscribe("self/#", inbox)
        endpoint.publish("self/a", b"me", qos=0)
        poll_until(endpoint, 1, inbox)
        assert inbox.messages == [("self/a", b"me")]


def test_mqtt_close_is_idempotent_and_ends_the_thread(mqtt_broker: str) -> None:
    twin = MqttTransport(mqtt_broker, "close-twin")
    thread = twin._thread
    assert thread.is_alive() and twin.connected
    twin.close()
    assert not thread.is_alive()
    assert twin.closed and not twin.connected
    twin.close()  # idempotent
    with pytest.raises(ConnectionError, match="closed"):
        twin.publish("a", b"")
    with pytest.raises(ConnectionError, match="closed"):
        twin.subscribe("a", Inbox())
    with pytest.raises(ConnectionError, match="closed"):
        twin.poll()


def test_connect_opens_mqtt_for_an_mqtt_url(mqtt_broker: str) -> None:
    with connect(mqtt_broker, "connect-twin") as twin:
        assert isinstance(twin, MqttTransport) and twin.connected


def test_a_lost_broker_raises_connection_error_after_the_queued_messages(tmp_path) -> None:
    url, broker = start_broker(tmp_path)
    try:
        with MqttTransport(url, "lost-twin", connect_timeout_s=2) as twin:
            inbox = Inbox()
            twin.subscribe("lost/#", inbox)
            twin.publish("lost/a", b"before")
            stop_broker(broker)
            time.sleep(0.2)

            assert twin.poll(timeout_s=2.0) == 1  # what arrived before the loss
            assert inbox.payloads == [b"before"]
            with pytest.raises(ConnectionError, match="lost the connection"):
                twin.poll(timeout_s=2.0)
            with pytest.raises(ConnectionError, match=url):
                twin.publish("lost/a", b"after")
            assert not twin.connected
    finally:
        stop_broker(broker)


def test_the_broker_fixture_fails_without_mosquitto(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(mqtt_broker_module, "MOSQUITTO", tmp_path / "no-mosquitto")
    with pytest.raises(pytest.fail.Exception, match="install Debian's mosquitto: make setup"):
        start_broker(tmp_path)
