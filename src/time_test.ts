import { assertEquals, assertThrows } from "../tests/assert.ts";
import { isoTime } from "./time.ts";

Deno.test("isoTime() writes what toISOString() writes, across years, months and leap days", () => {
  const samples = [
    0,
    Date.UTC(2000, 1, 29, 23, 59, 59, 999),
    Date.UTC(2026, 11, 1, 8, 5, 9, 7),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    Date.UTC(1, 0, 1),
  ];
  // A spread of times over four centuries, a few hours and odd milliseconds apart.
  for (
    let ms = Date.UTC(1900, 0, 1);
    ms < Date.UTC(2300, 0, 1);
    ms += 86_400_000 * 37 + 3_600_007
  ) {
    samples.push(ms);
  }
  for (const ms of samples) assertEquals(isoTime(ms), new Date(ms).toISOString(), String(ms));
});

Deno.test("isoTime() of a time that is not one throws, as toISOString() does", () => {
  assertThrows(() => isoTime(NaN), RangeError);
});
