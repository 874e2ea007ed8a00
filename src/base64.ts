/**
 * Base64 both ways, for Secret data (UTF-8 text), PEM bodies and JWT segments.
 *
 * @module
 */

/**
 * Base64 of the UTF-8 bytes of a text, as Secret `data` wants it.
 *
 * @param text The text.
 * @returns Its base64 form.
 *
 * @example
 * ```ts
 * import { toBase64 } from "./base64.ts";
 * console.assert(toBase64("token") === "dG9rZW4=");
 * ```
 */
export function toBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  // In slices: spreading a long token into one call would overflow the argument limit.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * The bytes of base64 or base64url text; whitespace and missing padding are allowed.
 *
 * @param text Base64 (`+/`) or base64url (`-_`) text.
 * @returns The bytes.
 * @throws {DOMException} When the text is not base64.
 *
 * @example
 * ```ts
 * import { fromBase64 } from "./base64.ts";
 * console.assert(new TextDecoder().decode(fromBase64("dG9rZW4")) === "token");
 * ```
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
