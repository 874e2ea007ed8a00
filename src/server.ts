/**
 * The health and metrics endpoints: a plain `Request -> Response` handler over a
 * {@linkcode HealthSource}, and the small server that listens on `http.address`.
 *
 * @module
 */
import { CodedError, messageOf } from "./errors.ts";
import { CONTENT_TYPE } from "./metrics.ts";
import type { HealthSource } from "./status.ts";

/** The paths the server answers. */
export const ENDPOINTS = ["/healthz", "/readyz", "/metrics"] as const;

const TEXT = "text/plain; charset=utf-8";

function reply(req: Request, status: number, body: string, headers: HeadersInit = {}): Response {
  return new Response(req.method === "HEAD" ? null : body, {
    status,
    headers: {
      "content-type": TEXT,
      // Probes and scrapes must see the state now, never a cached answer.
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}

/**
 * Builds the handler of `/healthz`, `/readyz` and `/metrics`. Checks answer `200 ok`, or `503`
 * with a one-line reason; `/metrics` answers the Prometheus text format. Only `GET` and `HEAD`
 * are allowed; other paths get `404`.
 *
 * @param source The checks and the metrics, usually a {@linkcode RefreshStatus}.
 * @returns The handler, for `Deno.serve` or for tests that call it directly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHealthHandler } from "./server.ts";
 *
 * const handler = createHealthHandler({
 *   liveness: () => ({ ok: true }),
 *   readiness: () => ({ ok: false, reason: "No successful refresh yet" }),
 *   metrics: () => "",
 * });
 * const res = handler(new Request("http://x/readyz"));
 * assert.equal(res.status, 503);
 * assert.equal(await res.text(), "No successful refresh yet\n");
 * ```
 */
export function createHealthHandler(source: HealthSource): (req: Request) => Response {
  return (req) => {
    const { pathname } = new URL(req.url);
    if (!(ENDPOINTS as readonly string[]).includes(pathname)) {
      return reply(req, 404, `Not found: the endpoints are ${ENDPOINTS.join(", ")}\n`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(req, 405, "Method not allowed: use GET or HEAD\n", { allow: "GET, HEAD" });
    }
    if (pathname === "/metrics") {
      return reply(req, 200, source.metrics(), { "content-type": CONTENT_TYPE });
    }
    const check = pathname === "/healthz" ? source.liveness() : source.readiness();
    return check.ok ? reply(req, 200, "ok\n") : reply(req, 503, `${check.reason}\n`);
  };
}

/** Where to listen. */
export interface ListenAddress {
  /** Host name or IP address; `0.0.0.0` for every IPv4 interface. */
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
}

/**
 * Reads an `http.address` value: `host:port`, `[v6]:port`, or `:port` for every IPv4 interface.
 *
 * @param address The configured value (already validated by the configuration).
 * @returns Host and port, or `undefined` for `off`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListenAddress } from "./server.ts";
 *
 * assert.deepEqual(parseListenAddress(":8080"), { hostname: "0.0.0.0", port: 8080 });
 * assert.deepEqual(parseListenAddress("[::]:9090"), { hostname: "::", port: 9090 });
 * assert.equal(parseListenAddress("off"), undefined);
 * ```
 */
export function parseListenAddress(address: string): ListenAddress | undefined {
  if (address === "off") return undefined;
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  // ":port" binds IPv4 only: a pod may have IPv6 switched off, where "::" would fail to bind.
  const hostname = host === "" ? "0.0.0.0" : host.replace(/^\[(.*)\]$/, "$1");
  return { hostname, port };
}

/** Codes of {@linkcode HealthServerError}. */
export type HealthServerErrorCode =
  /** The address cannot be listened on (in use, not local, privileged port, ...). */
  "HTTP_LISTEN";

/**
 * The health and metrics server could not start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HealthServerError } from "./server.ts";
 *
 * const error = new HealthServerError("Cannot listen", { address: ":8080" });
 * assert.equal(error.code, "HTTP_LISTEN");
 * ```
 */
export class HealthServerError extends CodedError<HealthServerErrorCode> {
  /** Always `HealthServerError`. */
  override name = "HealthServerError";
  /** The `http.address` value concerned. */
  readonly address: string;

  /**
   * Creates the error.
   *
   * @param message One line naming the address and the cause.
   * @param options The address and the underlying error.
   */
  constructor(message: string, options: { address: string; cause?: unknown }) {
    super(message, "HTTP_LISTEN", { cause: options.cause });
    this.address = options.address;
  }
}

/** Options of {@linkcode startHealthServer}. */
export interface HealthServerOptions {
  /** The `http.address` value: `host:port` or `:port` (`off` is the caller's to handle). */
  address: string;
  /** The request handler. */
  handler: (req: Request) => Response | Promise<Response>;
  /** Aborting it stops the server gracefully. */
  signal: AbortSignal;
}

/** A listening server. */
export interface HealthServer {
  /** The address actually bound (with the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** Settles when the server has stopped after the signal aborted. */
  readonly finished: Promise<void>;
}

function describeListenError(error: unknown): string {
  if (error instanceof Deno.errors.AddrInUse) return "the address is already in use";
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return "the address is not one of this machine's";
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied (ports below 1024 need privileges)";
  }
  if (error instanceof Deno.errors.NotCapable) {
    return "network access was not granted (run with --allow-net)";
  }
  return messageOf(error).replace(/\.$/, "");
}

/**
 * Listens on the address and serves the handler until the signal aborts.
 *
 * @param options Address, handler and stop signal.
 * @returns The bound address and a promise of the server's end.
 * @throws {HealthServerError} `HTTP_LISTEN` when the address cannot be listened on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startHealthServer } from "./server.ts";
 *
 * const stop = new AbortController();
 * const server = startHealthServer({
 *   address: "127.0.0.1:0",
 *   handler: () => new Response("ok"),
 *   signal: stop.signal,
 * });
 * assert.ok(server.addr.port > 0);
 * stop.abort();
 * await server.finished;
 * ```
 */
export function startHealthServer(options: HealthServerOptions): HealthServer {
  const listen = parseListenAddress(options.address);
  if (listen === undefined) {
    throw new HealthServerError(`Cannot listen on "off"`, { address: options.address });
  }
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      signal: options.signal,
      // The caller logs the address in its own format.
      onListen: () => {},
      // A failing handler must not print the request or the error's details to stderr.
      onError: () => new Response("Internal error\n", { status: 500 }),
    }, options.handler);
  } catch (error) {
    throw new HealthServerError(
      `Cannot serve /healthz, /readyz and /metrics on "${options.address}" (http.address): ${
        describeListenError(error)
      }; choose another address or set http.address to "off"`,
      { address: options.address, cause: error },
    );
  }
  return { addr: server.addr, finished: server.finished };
}
