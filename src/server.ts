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
    return check.ok
      ? reply(req, 200, `${check.note ?? "ok"}\n`)
      : reply(req, 503, `${check.reason}\n`);
  };
}

/** Where to listen. */
export interface ListenAddress {
  /** Host name or IP address; `::` for every interface. */
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /**
   * `:port`: every interface of both families, IPv4 and IPv6, falling back to IPv4 alone where
   * the system has no IPv6.
   */
  bothFamilies?: boolean;
}

/**
 * Reads an `http.address` value: `host:port`, `[v6]:port`, or `:port` for every IPv4 and IPv6
 * interface.
 *
 * @param address The configured value (already validated by the configuration).
 * @returns Host and port, or `undefined` for `off`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListenAddress } from "./server.ts";
 *
 * assert.deepEqual(parseListenAddress(":8080"), { hostname: "::", port: 8080, bothFamilies: true });
 * assert.deepEqual(parseListenAddress("[::]:9090"), { hostname: "::", port: 9090 });
 * assert.equal(parseListenAddress("off"), undefined);
 * ```
 */
export function parseListenAddress(address: string): ListenAddress | undefined {
  if (address === "off") return undefined;
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  // ":port" serves probes on an IPv6-only or IPv6-first cluster as well as on IPv4.
  if (host === "") return { hostname: "::", port, bothFamilies: true };
  return { hostname: host.replace(/^\[(.*)\]$/, "$1"), port };
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
  /** Starts one listener; `Deno.serve` unless a test passes its own. */
  serve?: ServeFunction;
}

/** How a listener is started: the TCP form of `Deno.serve`. */
export type ServeFunction = (
  options: Deno.ServeTcpOptions,
  handler: (req: Request) => Response | Promise<Response>,
) => Deno.HttpServer<Deno.NetAddr>;

/** A listening server. */
export interface HealthServer {
  /** The address actually bound (with the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** Settles when the server has stopped after the signal aborted. */
  readonly finished: Promise<void>;
  /**
   * For `:port` where IPv6 could not be listened on: why, as the system said. The server then
   * listens on IPv4 alone, which the caller logs once.
   */
  readonly ipv4Only?: string;
}

/** Failures that IPv4 would meet just the same, so falling back to it would only hide them. */
function failsOnEveryFamily(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse ||
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable;
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
  const serve: ServeFunction = options.serve ?? ((o, handler) => Deno.serve(o, handler));
  const bind = (hostname: string, port: number) =>
    serve({
      hostname,
      port,
      signal: options.signal,
      // The caller logs the address in its own format.
      onListen: () => {},
      // A failing handler must not print the request or the error's details to stderr.
      onError: () => new Response("Internal error\n", { status: 500 }),
    }, options.handler);
  const listenError = (error: unknown) =>
    new HealthServerError(
      `Cannot serve /healthz, /readyz and /metrics on "${options.address}" (http.address): ${
        describeListenError(error)
      }; choose another address or set http.address to "off"`,
      { address: options.address, cause: error },
    );

  let server: Deno.HttpServer<Deno.NetAddr>;
  let ipv4Only: string | undefined;
  try {
    server = bind(listen.hostname, listen.port);
  } catch (error) {
    if (!listen.bothFamilies || failsOnEveryFamily(error)) throw listenError(error);
    // No IPv6 on this system (a kernel booted with ipv6.disable=1): IPv4 alone still serves.
    ipv4Only = describeListenError(error);
    try {
      server = bind("0.0.0.0", listen.port);
    } catch (ipv4Error) {
      throw listenError(ipv4Error);
    }
  }
  const finished = [server.finished];
  if (listen.bothFamilies && ipv4Only === undefined) {
    // Linux gives "::" IPv4 too (IPV6_V6ONLY off), so this bind finds the port taken; where the
    // system keeps IPv6 sockets to IPv6 (net.ipv6.bindv6only=1), IPv4 needs its own listener.
    try {
      finished.push(bind("0.0.0.0", server.addr.port).finished);
    } catch {
      // Taken by the "::" listener itself: IPv4 is served already.
    }
  }
  return {
    addr: server.addr,
    finished: Promise.all(finished).then(() => {}),
    ...(ipv4Only === undefined ? {} : { ipv4Only }),
  };
}
