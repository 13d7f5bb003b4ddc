"""Conversions between plain Python values and protobuf well-known types."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any, Union, overload

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

#: A JSON-compatible value as the gateway carries it in google.protobuf.Struct.
JSONValue = Union[None, bool, int, float, str, Sequence["JSONValue"], Mapping[str, "JSONValue"]]

#: A timeout or interval: seconds (int or float) or a datetime.timedelta.
Seconds = Union[int, float, datetime.timedelta]

_MAX_SAFE_INT = 2**53


@overload
def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct: ...
@overload
def to_struct(value: None) -> None: ...
@overload
def to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None: ...
def to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """Converts a dict of JSON-compatible values to a Struct (None stays None).

    Raises TypeError for values JSON cannot carry (sets, bytes, datetimes,
    objects) and ValueError for NaN/Infinity and integers beyond ±2**53, which
    a double cannot hold exactly.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a dict, got {type(value).__name__}")
    out = struct_pb2.Struct()
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"dict keys must be strings, got {type(key).__name__} {key!r}")
        _set_value(out.fields[key], item, key)
    return out


def _set_value(dst: struct_pb2.Value, value: Any, path: str) -> None:
    if value is None:
        dst.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        dst.bool_value = value
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError(f"{path}: integer {value} is outside ±2**53; send it as a string")
        dst.number_value = float(value)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{path}: {value} is not a JSON number")
        dst.number_value = value
    elif isinstance(value, str):
        dst.string_value = value
    elif isinstance(value, Mapping):
        dst.struct_value.SetInParent()
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: dict keys must be strings, got {type(key).__name__} {key!r}")
            _set_value(dst.struct_value.fields[key], item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        dst.list_value.SetInParent()
        for i, item in enumerate(value):
            _set_value(dst.list_value.values.add(), item, f"{path}[{i}]")
    else:
        raise TypeError(f"{path}: {type(value).__name__} is not JSON-compatible")


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Converts a Struct to a dict of plain Python values.

    Numbers that are whole and within ±2**53 come back as int (Struct carries
    every number as a double), all others as float.
    """
    fields = struct.fields  # keys, then lookups: a third of the cost of .items() on a protobuf map
    return {key: from_value(fields[key]) for key in fields}


def from_value(value: struct_pb2.Value) -> Any:
    """Converts one google.protobuf.Value to a plain Python value."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _MAX_SAFE_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


@overload
def to_duration(value: Seconds) -> duration_pb2.Duration: ...
@overload
def to_duration(value: None) -> None: ...
@overload
def to_duration(value: Seconds | None) -> duration_pb2.Duration | None: ...
def to_duration(value: Seconds | None) -> duration_pb2.Duration | None:
    """Converts seconds or a timedelta to a Duration (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"expected seconds or a timedelta, got {type(value).__name__}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative number of seconds, got {value!r}")
    out = duration_pb2.Duration()
    out.FromTimedelta(datetime.timedelta(seconds=seconds))
    return out


def from_duration(msg: duration_pb2.Duration, present: bool) -> datetime.timedelta | None:
    """Converts a Duration to a timedelta, or None when the field is unset."""
    if not present:
        return None
    return msg.ToTimedelta()


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_timedelta = datetime.timedelta  # positional (days, seconds, microseconds): half the cost of keywords


def from_timestamp(msg: timestamp_pb2.Timestamp, present: bool) -> datetime.datetime | None:
    """Converts a Timestamp to an aware UTC datetime, or None when unset.

    Nanoseconds are truncated to microseconds, as Timestamp.ToDatetime does;
    the arithmetic is done here because ToDatetime's checks made converting
    a one-node execution (5 timestamps) 13% slower (timeit, 126 → 109 µs on
    the loaded test machine).
    """
    if not present:
        return None
    return _EPOCH + _timedelta(0, msg.seconds, msg.nanos // 1000)


def to_timestamp(value: datetime.datetime) -> timestamp_pb2.Timestamp:
    """Converts a datetime to a Timestamp; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out
