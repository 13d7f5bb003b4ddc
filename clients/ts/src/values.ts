// Conversions between plain JavaScript values and protobuf well-known types.

import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import {
  type Duration,
  DurationSchema,
  type Timestamp,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";

const MAX_SAFE = Number.MAX_SAFE_INTEGER + 1; // 2**53, the largest integer a double holds exactly

/**
 * Checks that a value can travel as google.protobuf.Struct and returns it
 * as a JsonObject. Throws TypeError for values JSON cannot carry (undefined
 * inside arrays, functions, symbols, bigints, Dates, Maps, class instances)
 * and RangeError for NaN/Infinity and integers beyond ±2**53. Object keys
 * whose value is undefined are dropped, as JSON.stringify does.
 */
export function toJsonObject(value: Record<string, unknown> | undefined, path = "value"): JsonObject | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!isPlainObject(value)) {
    throw new TypeError(`${path}: expected a plain object, got ${describe(value)}`);
  }
  return checkObject(value, path);
}

function checkObject(value: Record<string, unknown>, path: string): JsonObject {
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) {
      continue;
    }
    out[key] = checkValue(item, `${path}.${key}`);
  }
  return out;
}

function checkValue(value: unknown, path: string): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") {
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new RangeError(`${path}: ${value} is not a JSON number`);
    }
    if (Number.isInteger(value) && Math.abs(value) > MAX_SAFE) {
      throw new RangeError(`${path}: integer ${value} is outside ±2**53; send it as a string`);
    }
    return value;
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => {
      if (item === undefined) {
        throw new TypeError(`${path}[${i}]: undefined is not JSON-compatible`);
      }
      return checkValue(item, `${path}[${i}]`);
    });
  }
  if (isPlainObject(value)) {
    return checkObject(value, path);
  }
  throw new TypeError(`${path}: ${describe(value)} is not JSON-compatible`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) {
    return "null";
  }
  if (typeof value === "object") {
    return (value as object).constructor?.name ?? "object";
  }
  return typeof value;
}

/** Converts milliseconds to a Duration (undefined stays undefined). */
export function durationFromMs(ms: number | undefined, path = "duration"): Duration | undefined {
  if (ms === undefined) {
    return undefined;
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`${path}: must be a finite, non-negative number of milliseconds, got ${ms}`);
  }
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  if (nanos >= 1_000_000_000) {
    seconds += 1;
    nanos -= 1_000_000_000;
  }
  return create(DurationSchema, { seconds: BigInt(seconds), nanos });
}

/** Converts a Duration to milliseconds (undefined stays undefined). */
export function durationToMs(d: Duration | undefined): number | undefined {
  if (d === undefined) {
    return undefined;
  }
  return Number(d.seconds) * 1000 + d.nanos / 1_000_000;
}

/** Converts a Timestamp to a Date (undefined stays undefined). */
export function timestampToDate(ts: Timestamp | undefined): Date | undefined {
  if (ts === undefined) {
    return undefined;
  }
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}

/** Converts a Date to a Timestamp. */
export function dateToTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  if (Number.isNaN(ms)) {
    throw new RangeError("invalid Date");
  }
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 });
}
