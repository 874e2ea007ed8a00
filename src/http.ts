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
  const known = response.headers.has("content-length") && Number.isFinite(declared);
  if (known && declared > limit) {
    await response.body?.cancel();
    throw tooLarge(declared);
  }
  if (!response.body) return new Uint8Array(0);
  let reader: ReadableStreamBYOBReader;
  try {
    reader = response.body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream (a Response made from a JS stream): read its chunks as they come.
    return await readChunks(response.body.getReader(), limit, tooLarge);
  }
  // Read into a buffer of our own, sized to the declared length: a default reader of a fetch body
  // gets every chunk in a fresh 64 KiB buffer, outside the V8 heap and kept until a collection,
  // which at one refresh a second grew the process by megabytes between collections.
  let buffer = new Uint8Array(Math.min(limit + 1, known ? declared + 1 : 16 * 1024));
  let size = 0;
  while (true) {
    if (size === buffer.length) {
      if (size > limit) {
        await reader.cancel();
        throw tooLarge(undefined);
      }
      const larger = new Uint8Array(Math.min(limit + 1, buffer.length * 2));
      larger.set(buffer);
      buffer = larger;
    }
    const { done, value } = await reader.read(buffer.subarray(size));
    // The buffer read into is handed back (transferred) in `value`, even at the end.
    if (value !== undefined) buffer = new Uint8Array(value.buffer as ArrayBuffer);
    if (done) break;
    size += value.byteLength;
  }
  if (size > limit) throw tooLarge(undefined);
  // A small answer read into a large buffer is copied out, so the caller does not keep the rest.
  return buffer.length - size > 1024 ? buffer.slice(0, size) : buffer.subarray(0, size);
}

/** A reader of text decoded from a byte stream, as `pipeThrough(new TextDecoderStream())` gives. */
export interface TextReader {
  /** The next piece of text, or `done` at the end of the stream. */
  read(): Promise<ReadableStreamReadResult<string>>;
  /** Stops reading and cancels the stream. */
  cancel(): Promise<void>;
}

/**
 * Reads a long-lived body (a watch) as text through one buffer of its own, reused for every
 * read: a `TextDecoderStream` would pull each chunk in a fresh 64 KiB buffer outside the V8 heap,
 * kept until a collection, and a watch delivers a chunk for every change of the Secret.
 *
 * @param body The response body.
 * @param bufferBytes Size of the buffer read into. Default 16 KiB.
 * @returns The reader.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textReader } from "./http.ts";
 *
 * const reader = textReader(new Response("héllo").body!);
 * assert.equal((await reader.read()).value, "héllo");
 * assert.ok((await reader.read()).done);
 * ```
 */
export function textReader(body: ReadableStream<Uint8Array>, bufferBytes = 16 * 1024): TextReader {
  const decoder = new TextDecoder();
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: decode its chunks as they come.
  }
  if (byob === undefined) {
    const chunks = body.pipeThrough(new TextDecoderStream()).getReader();
    return { read: () => chunks.read(), cancel: () => chunks.cancel() };
  }
  const reader = byob;
  let buffer = new Uint8Array(bufferBytes);
  let finished = false;
  return {
    async read(): Promise<ReadableStreamReadResult<string>> {
      while (!finished) {
        const { done, value } = await reader.read(buffer);
        // The buffer comes back (transferred) in `value`; it is read into again next time.
        if (value !== undefined) buffer = new Uint8Array(value.buffer as ArrayBuffer);
        if (done) {
          finished = true;
          const rest = decoder.decode();
          if (rest !== "") return { done: false, value: rest };
          break;
        }
        const text = decoder.decode(value, { stream: true });
        if (text !== "") return { done: false, value: text };
      }
      return { done: true, value: undefined };
    },
    cancel: () => reader.cancel(),
  };
}

async function readChunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
  tooLarge: (declared: number | undefined) => Error,
): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  let size = 0;
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
    // "error sending request for url (URL): " or "... from ADDR for URL (ADDR): ".
    .replace(/^error sending request\b.*?\):\s*/, "")
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
 * @param proxy The proxy the request went through, if any ({@linkcode proxyFor}).
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
export function describeSendFailure(error: unknown, proxy?: ProxyRoute): string {
  const { kind, detail } = classifySendFailure(error);
  const said = SEND_FAILURE_KINDS.find(([k]) => k === kind)?.[2];
  const reason = said === undefined || detail.toLowerCase().includes(said.toLowerCase())
    ? detail
    : `${said}: ${detail}`;
  if (proxy === undefined) return reason;
  // Through a proxy the only connection made is to the proxy: a refused, unresolvable or
  // silent connection is the proxy's, not the endpoint's, whatever URL fetch names.
  const proxyFailed = kind === "refused" || kind === "dns" || kind === "timeout";
  return proxyFailed
    ? `the proxy ${proxy.proxy} (from ${proxy.variable}) is not reachable: ${reason}; check ${proxy.variable}, or list the host in NO_PROXY`
    : `${reason} (through the proxy ${proxy.proxy} from ${proxy.variable})`;
}

/** The proxy a request goes through, as the environment picks it. */
export interface ProxyRoute {
  /** The proxy's origin, without any user name or password. */
  readonly proxy: string;
  /** The variable that named it: `HTTPS_PROXY`, `http_proxy`, ... */
  readonly variable: string;
}

/** The names of the proxy variables, upper case first as Deno reads them. */
export const PROXY_VARIABLES: readonly string[] = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
];

/** Whether a `NO_PROXY` entry covers the host: `*`, the host itself, or a domain above it. */
function bypasses(entry: string, host: string): boolean {
  let rule = entry.trim().toLowerCase().replace(/^\*?\./, "");
  // A port is cut off "host:port" and "[v6]:port", never off a bare IPv6 address like "::1".
  rule = rule.startsWith("[")
    ? rule.replace(/^\[(.*)\](:\d+)?$/, "$1")
    : rule.split(":").length === 2
    ? rule.replace(/:\d+$/, "")
    : rule;
  if (rule === "") return false;
  if (rule === "*") return true;
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  return bare === rule || bare.endsWith(`.${rule}`);
}

/**
 * Which proxy `fetch` sends a request through, from the same variables it reads: `HTTPS_PROXY`
 * for `https:` and `HTTP_PROXY` for `http:` (either case, upper case first), unless `NO_PROXY`
 * covers the host. Used only to put a failure into the right words, never to route.
 *
 * @param url The request's URL.
 * @param env The environment (only the proxy variables are read).
 * @returns The proxy and its variable, or `undefined` for a direct connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { proxyFor } from "./http.ts";
 *
 * const env = { HTTPS_PROXY: "http://user:pw@proxy.example:3128", NO_PROXY: ".internal" };
 * assert.deepEqual(proxyFor("https://auth.example.com/token", env), {
 *   proxy: "http://proxy.example:3128",
 *   variable: "HTTPS_PROXY",
 * });
 * assert.equal(proxyFor("https://kube.internal/api", env), undefined);
 * ```
 */
export function proxyFor(
  url: string | URL,
  env: Readonly<Record<string, string | undefined>>,
): ProxyRoute | undefined {
  const target = new URL(url);
  const names = target.protocol === "https:"
    ? ["HTTPS_PROXY", "https_proxy"]
    : target.protocol === "http:"
    ? ["HTTP_PROXY", "http_proxy"]
    : [];
  const variable = names.find((name) => (env[name] ?? "") !== "");
  if (variable === undefined) return undefined;
  const noProxy = env.NO_PROXY ?? env.no_proxy ?? "";
  if (noProxy.split(",").some((entry) => bypasses(entry, target.hostname))) return undefined;
  const value = env[variable]!;
  let proxy: string;
  try {
    // A proxy URL may carry credentials: only its origin is ever shown.
    proxy = new URL(value.includes("://") ? value : `http://${value}`).origin;
  } catch {
    proxy = "(unparsable URL)";
  }
  return { proxy, variable };
}
