/**
 * HTTP helpers the token source and the Kubernetes client share.
 *
 * @module
 */

/**
 * Reads at most `limit` bytes of a response body; more is an error, so a huge answer cannot
 * exhaust memory. A declared `content-length` above the limit is refused before reading.
 *
 * @param response The response whose body to read.
 * @param limit The largest body accepted, in bytes.
 * @param tooLarge Makes the caller's error; `declared` is the `content-length` when that alone
 *   was too large, else `undefined` (the body grew past the limit while being read).
 * @returns The whole body.
 * @throws Whatever `tooLarge` returns, or what reading the body throws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBoundedBody } from "./http.ts";
 *
 * const body = await readBoundedBody(new Response("hello"), 10, () => new Error("too large"));
 * assert.equal(new TextDecoder().decode(body), "hello");
 * ```
 */
export async function readBoundedBody(
  response: Response,
  limit: number,
  tooLarge: (declared: number | undefined) => Error,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(response.headers.get("content-length"));
  if (response.headers.has("content-length") && Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel();
    throw tooLarge(declared);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    const reader = response.body.getReader();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw tooLarge(undefined);
      }
      chunks.push(value);
    }
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * Loopback hosts, the only ones plain `http:` may reach: nothing else can read the secret on the
 * way. Configuration checks `oidc.tokenurl` with it, and the token source a token endpoint named
 * by discovery.
 *
 * @param hostname The `hostname` of a parsed URL.
 * @returns True for `localhost`, `127.0.0.0/8` and `[::1]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopbackHost } from "./http.ts";
 *
 * assert.ok(isLoopbackHost(new URL("http://127.0.0.1:8080/token").hostname));
 * assert.ok(!isLoopbackHost(new URL("http://auth.example.com/token").hostname));
 * ```
 */
export function isLoopbackHost(hostname: string): boolean {
  // URL has already normalised the host: IPv4 in dotted decimal, IPv6 in brackets and compressed.
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
