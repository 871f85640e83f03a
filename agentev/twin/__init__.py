"""The live digital twin: VDA 5050 telemetry in, charging commands out.

* :mod:`agentev.twin.vda5050`: the wire format (VDA 5050 2.1.0 topics, JSON, official schemas);
* :mod:`agentev.twin.messages`: what a state message or a charging command says, any version;
* :mod:`agentev.twin.transport`: the in-process bus (default) and MQTT (aiomqtt);
* :mod:`agentev.twin.plant`: the simulated shop floor as the fleet on the wire, and a replay;
* :mod:`agentev.twin.mirror`: the twin's synchronised fleet state and its divergence;
* :mod:`agentev.twin.twin`: the twin, planning with the OptimizationController;
* :mod:`agentev.twin.runner`: both sides in one process, or each on a broker.

See docs/twin.md.
"""

from agentev.twin.messages import ChargeCommand, MessageError, VehicleReport
from agentev.twin.mirror import FleetMirror
from agentev.twin.plant import Plant, PlantOptions
from agentev.twin.runner import run_inprocess, run_plant, run_twin
from agentev.twin.transport import InProcessBus, MqttTransport, Transport, connect
from agentev.twin.twin import Twin
from agentev.twin.vda5050 import PROTOCOLS, VDA5050, protocol

__all__ = [
    "PROTOCOLS",
    "VDA5050",
    "ChargeCommand",
    "FleetMirror",
    "InProcessBus",
    "MessageError",
    "MqttTransport",
    "Plant",
    "PlantOptions",
    "Transport",
    "Twin",
    "VehicleReport",
    "connect",
    "protocol",
    "run_inprocess",
    "run_plant",
    "run_twin",
]
