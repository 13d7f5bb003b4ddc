import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dateToTimestamp, durationFromMs, durationToMs, timestampToDate, toJsonObject } from "../../src/values.js";

describe("toJsonObject", () => {
  it("keeps JSON-compatible values", () => {
    const value = { s: "x", i: 42, f: 1.5, t: true, n: null, list: [1, "two", [3], { a: false }], nested: { a: { b: "c" } } };
    assert.deepEqual(toJsonObject(value), value);
  });

  it("drops undefined object values and passes undefined through", () => {
    assert.deepEqual(toJsonObject({ a: 1, b: undefined }), { a: 1 });
    assert.equal(toJsonObject(undefined), undefined);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["NaN", { x: Number.NaN }, /value\.x: NaN is not a JSON number/],
    ["Infinity", { x: Number.POSITIVE_INFINITY }, /not a JSON number/],
    ["big integer", { x: 2 ** 53 + 2 }, /outside ±2\*\*53/],
    ["bigint", { x: 1n }, /value\.x: bigint is not JSON-compatible/],
    ["Date", { x: new Date() }, /value\.x: Date is not JSON-compatible/],
    ["Map", { x: new Map() }, /Map is not JSON-compatible/],
    ["function", { x: () => 1 }, /function is not JSON-compatible/],
    ["undefined in array", { x: [1, undefined] }, /value\.x\[1\]: undefined/],
  ];
  for (const [name, value, message] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(() => toJsonObject(value), message);
    });
  }

  it("rejects a non-object", () => {
    assert.throws(() => toJsonObject([1] as unknown as Record<string, unknown>), /expected a plain object, got Array/);
  });
});

describe("durations and timestamps", () => {
  it("converts milliseconds", () => {
    const d = durationFromMs(1500);
    assert.equal(d?.seconds, 1n);
    assert.equal(d?.nanos, 500_000_000);
    assert.equal(durationToMs(d), 1500);
    assert.equal(durationFromMs(undefined), undefined);
    assert.equal(durationToMs(undefined), undefined);
    assert.equal(durationFromMs(0.25)?.nanos, 250_000);
  });

  it("rejects negative and non-finite durations", () => {
    assert.throws(() => durationFromMs(-1, "timeoutMs"), /timeoutMs: must be a finite, non-negative/);
    assert.throws(() => durationFromMs(Number.NaN), RangeError);
  });

  it("round-trips dates", () => {
    const date = new Date("2030-01-02T03:04:05.678Z");
    assert.deepEqual(timestampToDate(dateToTimestamp(date)), date);
    assert.throws(() => dateToTimestamp(new Date("nope")), /invalid Date/);
  });
});
