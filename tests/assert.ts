/**
 * The assertions every test uses, and the only ones: one style across the project, on top of
 * `node:assert` (Deno's standard library is on JSR, which the project cannot reach).
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/**
 * Asserts that a value is truthy.
 *
 * @param value The value.
 * @param message What went wrong.
 */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message as string);
}

/**
 * Asserts deep equality.
 *
 * @param actual What the code produced.
 * @param expected What it should be.
 * @param message What went wrong.
 */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message as string);
}

/**
 * Asserts that a string contains another.
 *
 * @param actual The string searched.
 * @param expected The part that must be in it.
 * @param message What went wrong.
 */
export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (!actual.includes(expected)) {
    nodeAssert.fail(
      message ?? `Expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
    );
  }
}

/**
 * Asserts that a string does not contain another (used to prove secrets stay out of output).
 *
 * @param actual The string searched.
 * @param forbidden The part that must not be in it.
 * @param message What went wrong; the forbidden value itself is never printed.
 */
export function assertNotIncludes(actual: string, forbidden: string, message?: string): void {
  if (forbidden === "") throw new Error("assertNotIncludes needs a non-empty value");
  if (actual.includes(forbidden)) {
    nodeAssert.fail(message ?? "Output contains a value that must never appear in it");
  }
}

/**
 * Asserts that a string matches a pattern.
 *
 * @param actual The string.
 * @param pattern The pattern.
 * @param message What went wrong.
 */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message as string);
}

/**
 * Asserts that a string does not match a pattern.
 *
 * @param actual The string.
 * @param pattern The pattern.
 * @param message What went wrong.
 */
export function assertNotMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.doesNotMatch(actual, pattern, message as string);
}

/**
 * Asserts that two values differ (strictly, by identity for objects).
 *
 * @param actual What the code produced.
 * @param unexpected What it must not be.
 * @param message What went wrong.
 */
export function assertNotEquals(actual: unknown, unexpected: unknown, message?: string): void {
  nodeAssert.notStrictEqual(actual, unexpected, message as string);
}

/**
 * Fails the test.
 *
 * @param message What went wrong.
 */
export function fail(message: string): never {
  nodeAssert.fail(message);
}

function failWrongError(errorClass: { name: string }, err: unknown): never {
  nodeAssert.fail(
    `Expected ${errorClass.name}, got ${
      err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    }`,
  );
}

/**
 * Asserts that an async function rejects with an error of a class, and returns that error.
 *
 * @param fn The function.
 * @param errorClass The expected class.
 * @returns The error.
 */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  errorClass: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof errorClass) return err;
    failWrongError(errorClass, err);
  }
  nodeAssert.fail(`Expected the function to reject with ${errorClass.name}`);
}

/**
 * Asserts that a function throws an error of a class, and returns that error.
 *
 * @param fn The function.
 * @param errorClass The expected class.
 * @returns The error.
 */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  errorClass: new (...args: any[]) => E,
): E {
  try {
    fn();
  } catch (err) {
    if (err instanceof errorClass) return err;
    failWrongError(errorClass, err);
  }
  nodeAssert.fail(`Expected the function to throw ${errorClass.name}`);
}
