"""VDA 5050 version 2.1.0 on the wire: topics, JSON messages and their official schemas.

The one module that knows VDA 5050's field names. It encodes :class:`VehicleReport`,
:class:`ChargeCommand` and connection states into JSON documents and decodes received ones,
validating every document against the official v2.1.0 JSON schemas shipped in
``agentev/twin/schemas/vda5050-2.1.0`` (MIT licence, VDA; see its ``LICENSE.txt``).

VDA 5050 3.0.0 renames ``batteryState`` to ``powerSupply`` (and adds charging levels to the
factsheet): a 3.0 protocol is a subclass of :class:`VDA5050` that sets ``version``,
``schema_dir`` and overrides :meth:`VDA5050._battery` / :meth:`VDA5050._read_battery`;
:data:`PROTOCOLS` names it, and the rest of the twin is unchanged.

Mapping of an agentev vehicle onto a ``state`` message:

* ``batteryState.batteryCharge``: state of charge in percent; ``charging``: plugged in;
* ``driving``; ``loads``: one load while carrying a task's goods;
* a task is a transport order: ``orderId`` ``task-<id>``; ``nodeStates`` / ``edgeStates`` hold
  the order's nodes and edges not yet traversed (empty once delivered);
* ``lastNodeId``: the station or charger last reached; ``agvPosition``: metres on map
  ``factory``;
* ``actionStates``: the instant actions received and their status.

Range checks beyond the schema (which leaves numbers unbounded): ``batteryCharge`` in
0..100, ``headerId`` >= 0, a known ``actionType`` and ``targetSoc`` in 0..100 percent.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from functools import cached_property
from importlib import resources
from typing import Any

from agentev.twin.messages import (
    COMMAND_KINDS,
    EPOCH,
    START_CHARGING,
    ActionState,
    ChargeCommand,
    MessageError,
    VehicleReport,
    time_min_of,
    timestamp,
)

KINDS = ("state", "instantActions", "connection")
CONNECTION_STATES = ("ONLINE", "OFFLINE", "CONNECTIONBROKEN")
MAP_ID = "factory"


class VDA5050:
    """VDA 5050 v2.1.0: topics, encoding, decoding and schema validation.

    Args:
        manufacturer: The fleet's manufacturer name in topics and headers.
        interface: The topic's interface name (VDA 5050's default ``uagv``).
        epoch: The wall-clock time of the run's minute 0 (timestamps are minutes from it).
    """

    version = "2.1.0"
    schema_dir = "vda5050-2.1.0"

    def __init__(
        self, manufacturer: str = "agentev", interface: str = "uagv", epoch: datetime = EPOCH
    ) -> None:
        for name, value in (("manufacturer", manufacturer), ("interface", interface)):
            if not value or any(c in value for c in "/+#"):
                raise ValueError(f"{name} = {value!r}: allowed: a non-empty name without / + #")
        if epoch.tzinfo is None:
            raise ValueError(f"epoch = {epoch.isoformat()}: allowed: a time with a UTC offset")
        self.manufacturer = manufacturer
        self.interface = interface
        #: The wall-clock time of the run's minute 0 (a live fleet's: its shift's start).
        self.epoch = epoch

    # ----------------------------------------------------------------- topics
    @property
    def major(self) -> str:
        """The topic's version level, ``v`` and the major version (``v2``)."""
        return "v" + self.version.split(".")[0]

    def topic(self, serial: str, kind: str) -> str:
        """``<interface>/<major version>/<manufacturer>/<serialNumber>/<topic>``."""
        return f"{self.interface}/{self.major}/{self.manufacturer}/{serial}/{kind}"

    def subscription(self, kind: str, serial: str = "+") -> str:
        """A topic filter for ``kind`` messages of one vehicle or, by default, all."""
        return self.topic(serial, kind)

    def parse_topic(self, topic: str) -> tuple[str, str]:
        """``(serial, kind)`` of a topic of this interface, version and manufacturer.

        Raises:
            MessageError: for a topic of another interface, version, manufacturer or kind.
        """
        parts = topic.split("/")
        head = [self.interface, self.major, self.manufacturer]
        if len(parts) != 5 or parts[:3] != head or parts[4] not in KINDS:
            raise MessageError(
                "topic",
                f"topic = {topic!r}: allowed: {'/'.join(head)}/<serialNumber>/({'|'.join(KINDS)})",
            )
        return parts[3], parts[4]

    # ----------------------------------------------------------------- schemas
    @cached_property
    def _validators(self) -> dict[str, Any]:
        from jsonschema import Draft202012Validator

        folder = resources.files("agentev.twin") / "schemas" / self.schema_dir
        out = {}
        for kind in KINDS:
            schema = json.loads((folder / f"{kind}.schema").read_text(encoding="utf-8"))
            out[kind] = Draft202012Validator(schema)
        return out

    def schema_errors(self, kind: str, document: Any) -> list[str]:
        """Every way ``document`` breaks the official schema of ``kind`` (empty: valid)."""
        validator = self._validators[kind]
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        ]

    @cached_property
    def _fast(self) -> dict[str, Any]:
        import fastjsonschema

        folder = resources.files("agentev.twin") / "schemas" / self.schema_dir
        return {
            kind: fastjsonschema.compile(
                json.loads((folder / f"{kind}.schema").read_text(encoding="utf-8"))
            )
            for kind in KINDS
        }

    def validate(self, kind: str, document: Any) -> None:
        """Raise :class:`MessageError` (``schema``) unless ``document`` is valid.

        The schemas compiled to Python by ``fastjsonschema`` check each message (about 30 us
        for a state, against 600 us with ``jsonschema``, which had capped the twin at 1,700
        states/s); a document it rejects is checked again by ``jsonschema``'s reference
        validator, whose verdict and messages count. The tests check that both agree.
        """
        from fastjsonschema import JsonSchemaException

        try:
            self._fast[kind](document)
            return
        except JsonSchemaException:
            pass
        errors = self.schema_errors(kind, document)
        if errors:
            shown = "; ".join(errors[:3]) + ("; ..." if len(errors) > 3 else "")
            raise MessageError("schema", f"{kind} message fails VDA 5050 {self.version}: {shown}")

    def _header(self, header_id: int, time_min: float, serial: str) -> dict[str, Any]:
        return {
            "headerId": int(header_id),
            "timestamp": timestamp(time_min, self.epoch),
            "version": self.version,
            "manufacturer": self.manufacturer,
            "serialNumber": serial,
        }

    # ----------------------------------------------------------------- encode
    def _battery(self, report: VehicleReport) -> dict[str, Any]:
        return {
            "batteryState": {
                "batteryCharge": report.soc * 100.0,
                "charging": report.charging,
            }
        }

    def encode_state(self, report: VehicleReport) -> dict[str, Any]:
        """The ``state`` document of a report."""
        nodes = []
        edges = []
        if report.busy:
            # the order's nodes not yet reached: the drop-off, and the pick-up before loading
            remaining = ["dropoff"] if report.loaded else ["pickup", "dropoff"]
            for k, name in enumerate(remaining):
                nodes.append({"nodeId": name, "sequenceId": 2 * k + 2, "released": True})
                edges.append({"edgeId": f"to-{name}", "sequenceId": 2 * k + 1, "released": True})
        doc = self._header(report.header_id, report.time_min, report.serial)
        doc.update(
            {
                "orderId": report.order_id,
                "orderUpdateId": 0,
                "lastNodeId": report.node_id,
                "lastNodeSequenceId": 0,
                "nodeStates": nodes,
                "edgeStates": edges,
                "driving": report.driving,
                "operatingMode": "AUTOMATIC",
                "agvPosition": {
                    "x": report.x_m,
                    "y": report.y_m,
                    "theta": 0.0,
                    "mapId": MAP_ID,
                    "positionInitialized": True,
                },
                "loads": [{"loadId": report.order_id}] if report.loaded else [],
                "actionStates": [
                    {
                        "actionId": a.action_id,
                        "actionType": a.action_type,
                        "actionStatus": a.status,
                        **({"resultDescription": a.result} if a.result else {}),
                    }
                    for a in report.actions
                ],
                "errors": [{"errorType": e, "errorLevel": "WARNING"} for e in report.errors],
                "safetyState": {"eStop": "NONE", "fieldViolation": False},
            }
        )
        doc.update(self._battery(report))
        return doc

    def encode_command(self, command: ChargeCommand) -> dict[str, Any]:
        """The ``instantActions`` document of one command."""
        params = []
        if command.charger_id is not None:
            params.append({"key": "chargerId", "value": command.charger_id})
        if command.target_soc is not None:
            params.append({"key": "targetSoc", "value": command.target_soc * 100.0})
        action: dict[str, Any] = {
            "actionType": command.kind,
            "actionId": command.action_id,
            "blockingType": "NONE",
        }
        if params:
            action["actionParameters"] = params
        doc = self._header(command.header_id, command.time_min, command.serial)
        doc["actions"] = [action]
        return doc

    def encode_connection(
        self, serial: str, header_id: int, time_min: float, state: str
    ) -> dict[str, Any]:
        """The ``connection`` document (``ONLINE``, ``OFFLINE`` or ``CONNECTIONBROKEN``)."""
        if state not in CONNECTION_STATES:
            raise ValueError(f"connectionState = {state!r}: allowed: {CONNECTION_STATES}")
        doc = self._header(header_id, time_min, serial)
        doc["connectionState"] = state
        return doc

    def dumps(self, kind: str, document: dict[str, Any]) -> bytes:
        """Validate and serialise a document agentev publishes.

        Raises:
            MessageError: if agentev built an invalid document (a bug, never sent).
        """
        self.validate(kind, document)
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()

    # ----------------------------------------------------------------- decode
    def loads(self, kind: str, payload: bytes | str) -> dict[str, Any]:
        """Parse and validate a received document.

        Raises:
            MessageError: ``json`` for bytes that are not a UTF-8 JSON object, ``schema`` for
                a document that fails the official schema.
        """
        try:
            document = json.loads(payload, parse_constant=_reject_constant)
        except (ValueError, TypeError, RecursionError) as exc:
            raise MessageError("json", f"{kind} message is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise MessageError("json", f"{kind} message: allowed: a JSON object")
        self.validate(kind, document)
        return document

    def _read_battery(self, doc: dict[str, Any]) -> tuple[float, bool]:
        battery = doc["batteryState"]
        return battery["batteryCharge"], battery["charging"]

    def _check_header(self, doc: dict[str, Any]) -> float:
        if doc["headerId"] < 0:
            raise MessageError("range", f"headerId = {doc['headerId']}: allowed: >= 0")
        if doc["manufacturer"] != self.manufacturer:
            raise MessageError(
                "unknown",
                f"manufacturer = {doc['manufacturer']!r}: allowed: {self.manufacturer!r}",
            )
        time_min = time_min_of(doc["timestamp"], self.epoch)
        if not math.isfinite(time_min):
            raise MessageError("range", f"timestamp = {doc['timestamp']!r}: not a finite time")
        return time_min

    def decode_state(self, payload: bytes | str) -> VehicleReport:
        """A :class:`VehicleReport` from a received ``state`` message.

        Raises:
            MessageError: for invalid JSON, a schema failure or a value out of range.
        """
        doc = self.loads("state", payload)
        time_min = self._check_header(doc)
        charge, charging = self._read_battery(doc)
        if not (isinstance(charge, int | float) and 0.0 <= charge <= 100.0):
            raise MessageError("range", f"batteryCharge = {charge!r}: allowed: 0..100 (percent)")
        position = doc.get("agvPosition") or {}
        x, y = position.get("x", 0.0), position.get("y", 0.0)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise MessageError("range", f"agvPosition = ({x!r}, {y!r}): allowed: finite metres")
        return VehicleReport(
            serial=doc["serialNumber"],
            header_id=doc["headerId"],
            time_min=time_min,
            soc=charge / 100.0,
            charging=charging,
            driving=doc["driving"],
            loaded=bool(doc.get("loads")),
            busy=bool(doc["nodeStates"] or doc["edgeStates"]),
            order_id=doc["orderId"],
            node_id=doc["lastNodeId"],
            x_m=float(x),
            y_m=float(y),
            actions=tuple(
                ActionState(
                    a["actionId"],
                    a.get("actionType", ""),
                    a["actionStatus"],
                    a.get("resultDescription", ""),
                )
                for a in doc["actionStates"]
            ),
            errors=tuple(e["errorType"] for e in doc["errors"]),
        )

    def decode_commands(self, payload: bytes | str) -> list[ChargeCommand]:
        """The charging commands of a received ``instantActions`` message.

        Raises:
            MessageError: for invalid JSON, a schema failure, an action type other than
                ``startCharging`` / ``stopCharging`` or a ``targetSoc`` outside 0..100. The
                whole message is rejected: no action of it is applied.
        """
        doc = self.loads("instantActions", payload)
        time_min = self._check_header(doc)
        out = []
        for action in doc["actions"]:
            kind = action["actionType"]
            if kind not in COMMAND_KINDS:
                raise MessageError(
                    "range", f"actionType = {kind!r}: allowed: {', '.join(COMMAND_KINDS)}"
                )
            params = {p["key"]: p["value"] for p in action.get("actionParameters", [])}
            charger = params.get("chargerId")
            if charger is not None and not isinstance(charger, str):
                raise MessageError("range", f"chargerId = {charger!r}: allowed: a charger id")
            target = params.get("targetSoc")
            if target is not None and not (
                isinstance(target, int | float)
                and not isinstance(target, bool)
                and 0.0 <= target <= 100.0
            ):
                raise MessageError("range", f"targetSoc = {target!r}: allowed: 0..100 (percent)")
            out.append(
                ChargeCommand(
                    serial=doc["serialNumber"],
                    kind=kind,
                    action_id=action["actionId"],
                    time_min=time_min,
                    charger_id=charger if kind == START_CHARGING else None,
                    target_soc=None if target is None else target / 100.0,
                    header_id=doc["headerId"],
                )
            )
        return out

    def decode_connection(self, payload: bytes | str) -> tuple[str, str]:
        """``(serial, connectionState)`` of a received ``connection`` message."""
        doc = self.loads("connection", payload)
        self._check_header(doc)
        return doc["serialNumber"], doc["connectionState"]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


#: Protocol versions by name; a new version is one more class and one more entry.
PROTOCOLS: dict[str, type[VDA5050]] = {"2.1.0": VDA5050}


def protocol(version: str = "2.1.0", **kwargs: Any) -> VDA5050:
    """The protocol of a VDA 5050 version.

    Raises:
        ValueError: for a version agentev does not speak, naming those it does.
    """
    if version not in PROTOCOLS:
        raise ValueError(f"VDA 5050 version = {version!r}: allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[version](**kwargs)
