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

/** What kind of failure kept a request from getting an answer; callers branch on this. */
export type SendFailureKind = "tls" | "refused" | "dns" | "timeout" | "reset" | "other";

/** Why a request got no answer: its kind, and the transport's own words for it. */
export interface SendFailure {
  /** The kind of failure. */
  readonly kind: SendFailureKind;
  /**
   * The transport's words (`invalid peer certificate: UnknownIssuer`, `tcp connect error:
   * Connection refused (os error 111)`), without the URL it repeats. Never holds a body: no
   * answer came.
   */
  readonly detail: string;
}

/** The kinds, each with the words that name it in the transport's text and how it is said. */
const SEND_FAILURE_KINDS: ReadonlyArray<readonly [SendFailureKind, RegExp, string]> = [
  ["tls", /certificate|tls|ssl|handshake|UnknownIssuer/i, "TLS failed"],
  ["refused", /connection refused/i, "connection refused"],
  ["dns", /dns error|failed to lookup|name or service not known|no address/i, "DNS lookup failed"],
  ["timeout", /timed out|timeout/i, "timed out"],
  ["reset", /connection reset|broken pipe|connection closed|unexpected eof/i, "connection lost"],
];

/**
 * Classifies why `fetch` failed without an answer. Deno's own message is only "fetch failed";
 * its cause says why, in the words of the TLS and socket layers, which is what an operator needs
 * (a wrong CA and a dead port must not read alike).
 *
 * @param error What `fetch` threw.
 * @returns The kind and the transport's words.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifySendFailure } from "./http.ts";
 *
 * const err = new TypeError("fetch failed", {
 *   cause: new Error("error sending request for url (https://10.0.0.1/): client error (Connect): invalid peer certificate: UnknownIssuer"),
 * });
 * assert.deepEqual(classifySendFailure(err), {
 *   kind: "tls",
 *   detail: "invalid peer certificate: UnknownIssuer",
 * });
 * ```
 */
export function classifySendFailure(error: unknown): SendFailure {
  const cause = error instanceof Error ? error.cause : undefined;
  const raw = cause instanceof Error && cause.message !== ""
    ? cause.message
    : error instanceof Error
    ? error.message
    : String(error);
  const detail = raw
    .replace(/^error sending request for url \([^)]*\):\s*/, "")
    .replace(/^client error \(\w+\):\s*/, "")
    .replaceAll(/\s+/g, " ")
    .trim();
  const kind = SEND_FAILURE_KINDS.find(([, words]) => words.test(detail))?.[0] ?? "other";
  return { kind, detail: detail === "" ? "no reason given" : detail };
}

/**
 * Puts why a request got no answer into words that fit after "could not be reached: ": the kind
 * first (unless the transport's words already say it), then the transport's words.
 *
 * @param error What `fetch` threw.
 * @returns E.g. `TLS failed: invalid peer certificate: UnknownIssuer`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeSendFailure } from "./http.ts";
 *
 * const err = new TypeError("fetch failed", { cause: new Error("connection refused") });
 * assert.equal(describeSendFailure(err), "connection refused");
 * ```
 */
export function describeSendFailure(error: unknown): string {
  const { kind, detail } = classifySendFailure(error);
  const said = SEND_FAILURE_KINDS.find(([k]) => k === kind)?.[2];
  return said === undefined || detail.toLowerCase().includes(said.toLowerCase())
    ? detail
    : `${said}: ${detail}`;
}
