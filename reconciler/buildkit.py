"""BuildKit's progress, as dockerd streams it: ``{"id": "moby.buildkit.trace", "aux": <base64>}``.

The payload is a protobuf ``moby.buildkit.v1.StatusResponse`` (BuildKit's
api/services/control/control.proto).  Decoding it by hand is a few lines of
protobuf wire format; the alternative is generated code for the whole
BuildKit API plus the protobuf runtime, for the three fields we read:

    StatusResponse { repeated Vertex vertexes = 1; ...; repeated VertexLog logs = 3; }
    Vertex         { string digest = 1; string name = 3; bool cached = 4;
                     Timestamp started = 5; Timestamp completed = 6; string error = 7; }
    VertexLog      { string vertex = 1; int64 stream = 3; bytes msg = 4; }
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field


@dataclass
class Step:
    digest: str
    name: str
    cached: bool = False
    started: bool = False
    completed: bool = False
    error: str = ""


@dataclass
class Status:
    steps: list[Step] = field(default_factory=list)
    logs: list[tuple[str, bytes]] = field(default_factory=list)  # (vertex digest, output)


def decode(aux: str) -> Status:
    """One trace message; an undecodable one reads as empty (progress is best effort)."""
    try:
        data = base64.b64decode(aux)
        status = Status()
        for number, value in _fields(data):
            if number == 1 and isinstance(value, bytes):
                status.steps.append(_step(value))
            elif number == 3 and isinstance(value, bytes):
                log = dict(_fields(value))
                status.logs.append((_text(log.get(1)), log.get(4, b"") if isinstance(log.get(4), bytes) else b""))
        return status
    except (ValueError, IndexError, binascii.Error):
        return Status()


def _step(data: bytes) -> Step:
    step = Step("", "")
    for number, value in _fields(data):
        if number == 1:
            step.digest = _text(value)
        elif number == 3:
            step.name = _text(value)
        elif number == 4:
            step.cached = bool(value)
        elif number == 5:
            step.started = True
        elif number == 6:
            step.completed = True
        elif number == 7:
            step.error = _text(value)
    return step


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _fields(data: bytes):
    """(field number, value) pairs: ints for varints, bytes for length-delimited."""
    i = 0
    value: int | bytes
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _varint(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
