/**
 * What every error of the tool has in common: a `code` constant that callers branch on (never
 * the message text), and the few ways of putting a foreign error into words.
 *
 * @module
 */

/**
 * The base of the tool's errors: a message and a machine-readable code. Subclasses add the
 * details of their domain (HTTP status, key, source) and set `name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CodedError } from "./errors.ts";
 *
 * class DemoError extends CodedError<"DEMO_BROKEN"> {
 *   override name = "DemoError";
 * }
 * const error = new DemoError("It broke", "DEMO_BROKEN");
 * assert.equal(error.code, "DEMO_BROKEN");
 * ```
 */
export class CodedError<Code extends string> extends Error {
  /** What kind of failure this is; branch on this. */
  readonly code: Code;

  /**
   * @param message One line: starts with a capital, no trailing period, never a secret.
   * @param code The code.
   * @param options The underlying error, if any.
   */
  constructor(message: string, code: Code, options?: ErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/**
 * The message of anything thrown: an `Error`'s message, else the value as a string.
 *
 * @param error What was thrown.
 * @returns Its message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { messageOf } from "./errors.ts";
 *
 * assert.equal(messageOf(new Error("boom")), "boom");
 * assert.equal(messageOf("plain"), "plain");
 * ```
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Why a file could not be read, in words that fit after a colon: "no such
 * file", "permission denied", ... The error's own text is used only for
 * unusual failures; it names the path at most, never the content.
 *
 * @param error What `Deno.readTextFile` (or a stand-in) threw.
 * @returns A short reason without a trailing period.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeReadError } from "./errors.ts";
 *
 * assert.equal(describeReadError(new Deno.errors.NotFound("x")), "no such file");
 * ```
 */
export function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) {
    return "read access was not granted (run with --allow-read)";
  }
  return messageOf(error).replace(/\.$/, "");
}
