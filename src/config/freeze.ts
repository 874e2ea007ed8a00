/**
 * Freezing the merged configuration so that printing it, as JSON or through inspection, shows
 * secrets as `[redacted]`.
 *
 * @module
 */
import { isMapping } from "./file.ts";
import { KEYS } from "./schema.ts";
import type { KeyDefinition } from "./types.ts";

const REDACTED = "[redacted]";

/** A plain copy with secret fields replaced, for JSON and inspection. */
function redactedCopy(node: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const secretFields: readonly string[] = KEYS.filter((d: KeyDefinition) => d.secret).map((d) =>
    d.field
  );
  const copy: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(node)) {
    const field = prefix === "" ? name : `${prefix}.${name}`;
    if (secretFields.includes(field)) copy[name] = REDACTED;
    else if (isMapping(value)) copy[name] = redactedCopy(value, field);
    else copy[name] = value;
  }
  return copy;
}

/** Freezes the tree; every object gets hooks so that printing it hides secrets. */
export function freezeConfig(node: Record<string, unknown>, prefix = ""): void {
  for (const [name, value] of Object.entries(node)) {
    if (isMapping(value)) freezeConfig(value, prefix === "" ? name : `${prefix}.${name}`);
  }
  const hidden = { enumerable: false, configurable: false, writable: false };
  Object.defineProperties(node, {
    toJSON: { ...hidden, value: () => redactedCopy(node, prefix) },
    [Symbol.for("Deno.customInspect")]: {
      ...hidden,
      value: (inspect: (value: unknown, options: unknown) => string, options: unknown) =>
        inspect(redactedCopy(node, prefix), options),
    },
    [Symbol.for("nodejs.util.inspect.custom")]: {
      ...hidden,
      value: (
        _depth: number,
        options: unknown,
        inspect: (value: unknown, options: unknown) => string,
      ) => inspect(redactedCopy(node, prefix), options),
    },
  });
  Object.freeze(node);
}
