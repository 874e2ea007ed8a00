/**
 * The templates of a target's `data`: text with a closed set of placeholders, no code, no
 * filesystem, no environment. A template is compiled once at start (an unknown placeholder is a
 * config error then) and rendered for every new token.
 *
 * @module
 */
import type { Token } from "../token.ts";
import { isoTime } from "../time.ts";

/** The placeholders a template may use. */
export const PLACEHOLDERS = [
  "token",
  "tokenType",
  "expiresAt",
  "obtainedAt",
  "expiresAtUnix",
] as const;

/** One placeholder's name. */
export type Placeholder = typeof PLACEHOLDERS[number];

/** A compiled template: literal text and placeholders, in order. */
export interface Template {
  /** The template as written. */
  readonly source: string;
  /** Literal strings and placeholders, alternating as they appear. */
  readonly parts: readonly (string | { readonly name: Placeholder })[];
}

/** Thrown by {@linkcode compileTemplate}; `message` names the problem and the fix. */
export class TemplateError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

/**
 * Compiles a template. `{{ .name }}` (spaces inside the braces optional) is a placeholder; any
 * other `{{` is an error, so a typo cannot slip into a Secret as literal text.
 *
 * @param source The template.
 * @returns The compiled template.
 * @throws {TemplateError} For an unknown placeholder or an unclosed `{{`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileTemplate, renderTemplate } from "./template.ts";
 * const template = compileTemplate("Bearer {{.token}}");
 * assert.equal(renderTemplate(template, { value: "abc", obtainedAt: 0, lifetimeSource: "unknown" }), "Bearer abc");
 * ```
 */
export function compileTemplate(source: string): Template {
  const parts: (string | { name: Placeholder })[] = [];
  let rest = source;
  while (rest.length > 0) {
    const open = rest.indexOf("{{");
    if (open === -1) {
      parts.push(rest);
      break;
    }
    if (open > 0) parts.push(rest.slice(0, open));
    const close = rest.indexOf("}}", open + 2);
    if (close === -1) {
      throw new TemplateError(
        `"{{" without a closing "}}"; placeholders are ${placeholderList()}`,
      );
    }
    const inner = rest.slice(open + 2, close).trim();
    const match = /^\.([A-Za-z]+)$/.exec(inner);
    const name = match?.[1];
    if (name === undefined || !(PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new TemplateError(
        `unknown placeholder "{{ ${inner} }}"; placeholders are ${placeholderList()}`,
      );
    }
    parts.push({ name: name as Placeholder });
    rest = rest.slice(close + 2);
  }
  return { source, parts };
}

function placeholderList(): string {
  return PLACEHOLDERS.map((p) => `{{ .${p} }}`).join(", ");
}

/**
 * Whether the template is exactly the token (`{{ .token }}`), so the token can be read back
 * from the key it fills (adoption at start).
 *
 * @param template The compiled template.
 * @returns True when the key holds the bare token.
 */
export function isBareToken(template: Template): boolean {
  return template.parts.length === 1 && typeof template.parts[0] === "object" &&
    template.parts[0].name === "token";
}

/**
 * Renders a template for a token. Times are RFC 3339 UTC; an unknown expiry renders as the
 * empty string.
 *
 * @param template The compiled template.
 * @param token The token.
 * @returns The text.
 */
export function renderTemplate(template: Template, token: Token): string {
  let out = "";
  for (const part of template.parts) {
    out += typeof part === "string" ? part : placeholderValue(part.name, token);
  }
  return out;
}

function rfc3339(ms: number): string {
  // Whole seconds: consumers parse these, and a fraction is noise to most of them.
  return isoTime(Math.floor(ms / 1000) * 1000).replace(".000Z", "Z");
}

function placeholderValue(name: Placeholder, token: Token): string {
  switch (name) {
    case "token":
      return token.value;
    case "tokenType":
      return token.tokenType ?? "Bearer";
    case "expiresAt":
      return token.expiresAt === undefined ? "" : rfc3339(token.expiresAt);
    case "obtainedAt":
      return rfc3339(token.obtainedAt);
    case "expiresAtUnix":
      return token.expiresAt === undefined ? "" : String(Math.floor(token.expiresAt / 1000));
  }
}
