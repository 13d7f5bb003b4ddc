"""Conversions between Python values and protobuf well-known types."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from kgw._values import from_struct, from_timestamp, to_duration, to_struct, to_timestamp


def test_struct_round_trip_keeps_plain_values() -> None:
    value: dict[str, Any] = {
        "s": "text",
        "i": 42,
        "neg": -7,
        "f": 1.5,
        "t": True,
        "n": None,
        "list": [1, "two", [3.25], {"x": False}],
        "nested": {"a": {"b": "c"}},
        "empty": {},
    }
    struct = to_struct(value)
    assert struct is not None
    assert from_struct(struct) == value


def test_whole_numbers_come_back_as_int() -> None:
    struct = struct_pb2.Struct()
    struct.update({"count": 3.0, "ratio": 0.5, "big": float(2**53)})
    out = from_struct(struct)
    assert out == {"count": 3, "ratio": 0.5, "big": 2**53}
    assert isinstance(out["count"], int)
    assert isinstance(out["ratio"], float)


def test_none_struct_stays_none() -> None:
    assert to_struct(None) is None


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({"x": {1, 2}}, TypeError, r"x: set is not JSON-compatible"),
        ({"x": b"raw"}, TypeError, r"x: bytes"),
        ({"x": [datetime.datetime.now()]}, TypeError, r"x\[0\]: datetime"),
        ({1: "a"}, TypeError, r"keys must be strings"),
        ({"x": {"y": {2: 1}}}, TypeError, r"x.y: dict keys must be strings"),
        ({"x": math.nan}, ValueError, r"not a JSON number"),
        ({"x": math.inf}, ValueError, r"not a JSON number"),
        ({"x": 2**53 + 1}, ValueError, r"outside ±2\*\*53"),
    ],
)
def test_to_struct_rejects_what_json_cannot_carry(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        to_struct(value)


def test_to_struct_rejects_non_dict() -> None:
    with pytest.raises(TypeError, match="expected a dict, got list"):
        to_struct([1, 2])  # type: ignore[call-overload]


def test_duration_from_seconds_and_timedelta() -> None:
    d = to_duration(1.5)
    assert d is not None and d.seconds == 1 and d.nanos == 500_000_000
    d = to_duration(datetime.timedelta(minutes=2))
    assert d is not None and d.seconds == 120 and d.nanos == 0
    d = to_duration(30)
    assert d is not None and d.ToTimedelta() == datetime.timedelta(seconds=30)
    assert to_duration(None) is None


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf])
def test_duration_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        to_duration(bad)


def test_duration_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        to_duration("5s")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        to_duration(True)


def test_naive_datetime_is_taken_as_utc() -> None:
    naive = datetime.datetime(2030, 1, 2, 3, 4, 5)
    ts = to_timestamp(naive)
    assert ts.ToDatetime(tzinfo=datetime.timezone.utc) == naive.replace(tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (0, 0),
        (1796618237, 262288587),  # a gateway timestamp
        (1796618237, 999_999_999),  # nanoseconds truncate, never round up a second
        (1796618237, 999),  # below a microsecond
        (-1, 500_000_000),  # before the epoch
        (-62135596800, 0),  # 0001-01-01, Timestamp's minimum
        (253402300799, 999_999_999),  # 9999-12-31T23:59:59.999999999, its maximum
    ],
)
def test_from_timestamp_matches_protobuf(seconds: int, nanos: int) -> None:
    ts = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    got = from_timestamp(ts, True)
    assert got == ts.ToDatetime(tzinfo=datetime.timezone.utc)
    assert got is not None and got.tzinfo is datetime.timezone.utc
    assert from_timestamp(ts, False) is None
