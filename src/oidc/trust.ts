/**
 * Trust for providers behind a private CA: the certificates of `oidc.cafile`,
 * read before every token request so that a renewed CA bundle is picked up
 * without a restart, and the HTTP client that trusts them.
 *
 * Errors are {@linkcode TokenError}s with code `TOKEN_TRUST`.
 *
 * @module
 */

import { describeReadError, messageOf } from "../errors.ts";
import type { ReadFileOptions } from "./auth.ts";
import { TokenError } from "./error.ts";

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Reads the PEM certificates of a CA file (a bundle may hold several).
 *
 * @param path The file, like a `ca.crt` key of a mounted Secret or ConfigMap.
 * @param options How to read it.
 * @returns Each certificate as its own PEM block.
 * @throws {TokenError} `TOKEN_TRUST` when the file cannot be read or holds no
 *   `BEGIN CERTIFICATE` block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCaCertificates } from "./trust.ts";
 *
 * const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
 * const certificates = await readCaCertificates("/etc/ktr/ca.crt", {
 *   readTextFile: () => Promise.resolve(pem + pem),
 * });
 * assert.equal(certificates.length, 2);
 * ```
 */
export async function readCaCertificates(
  path: string,
  options: ReadFileOptions = {},
): Promise<string[]> {
  const { readTextFile = Deno.readTextFile } = options;
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (error) {
    throw new TokenError(
      `Cannot read CA file ${JSON.stringify(path)}: ${describeReadError(error)}`,
      {
        code: "TOKEN_TRUST",
        cause: error,
      },
    );
  }
  const certificates = text.match(CERTIFICATE) ?? [];
  if (certificates.length === 0) {
    // Deno would accept such a file and trust nothing from it, which fails much later.
    throw new TokenError(
      `CA file ${
        JSON.stringify(path)
      } holds no PEM certificate: expected "-----BEGIN CERTIFICATE-----" blocks`,
      { code: "TOKEN_TRUST" },
    );
  }
  return certificates;
}

/**
 * Reads a CA file and creates an HTTP client that trusts its certificates
 * besides the built-in roots. The client still honours `HTTPS_PROXY`,
 * `HTTP_PROXY` and `NO_PROXY`, as plain `fetch` does. Close it when done.
 *
 * @param path The CA file.
 * @param options How to read it.
 * @returns The client, to pass as `client` in the init of `fetch`.
 * @throws {TokenError} `TOKEN_TRUST` when the file cannot be read, holds no
 *   certificate, or holds one that cannot be parsed.
 *
 * @example
 * ```ts ignore
 * import { createTrustingClient } from "./trust.ts";
 *
 * using client = await createTrustingClient("/etc/ktr/ca.crt");
 * await fetch("https://auth.internal.example/.well-known/openid-configuration", { client });
 * ```
 */
export async function createTrustingClient(
  path: string,
  options: ReadFileOptions = {},
): Promise<Deno.HttpClient> {
  const certificates = await readCaCertificates(path, options);
  try {
    return Deno.createHttpClient({ caCerts: certificates });
  } catch (error) {
    // The reason names the parse failure ("BadEncoding"), not certificate bytes.
    const reason = messageOf(error);
    throw new TokenError(
      `CA file ${JSON.stringify(path)} holds a certificate that cannot be used: ${reason}`,
      { code: "TOKEN_TRUST", cause: error },
    );
  }
}
