/**
 * What the client authenticates with, read from files: the client secret, and
 * the private key of `private_key_jwt` (PEM or JWK). The token source reads
 * them again before every request, so a rotated Kubernetes Secret mounted as
 * a volume is picked up without a restart.
 *
 * Errors are {@linkcode TokenError}s with code `TOKEN_CREDENTIALS`. They name
 * the file and what is wrong with it, never a byte of its content.
 *
 * @module
 */

import { fromBase64 } from "../base64.ts";
import type { SigningAlgorithm } from "../config/mod.ts";
import { describeReadError } from "../errors.ts";
import { TokenError } from "./error.ts";

/** Options of the functions here that read a file. */
export interface ReadFileOptions {
  /** Reads a whole file as UTF-8; defaults to `Deno.readTextFile`. */
  readTextFile?: (path: string) => Promise<string>;
}

function credentialsError(message: string, cause?: unknown): TokenError {
  return new TokenError(message, { code: "TOKEN_CREDENTIALS", cause });
}

async function readFile(path: string, what: string, options: ReadFileOptions): Promise<string> {
  const { readTextFile = Deno.readTextFile } = options;
  try {
    return await readTextFile(path);
  } catch (error) {
    // Read errors name the path at most, so the cause is safe to keep.
    throw credentialsError(
      `Cannot read ${what} ${JSON.stringify(path)}: ${describeReadError(error)}`,
      error,
    );
  }
}

/**
 * Reads a client secret from a file. Line breaks at the end are dropped,
 * since editors and `echo` add one; any other surrounding whitespace is
 * refused rather than sent, as it is almost always a mistake.
 *
 * @param path The file, typically a key of a mounted Secret.
 * @param options How to read it.
 * @returns The secret.
 * @throws {TokenError} `TOKEN_CREDENTIALS` when the file cannot be read, is
 *   empty, or has whitespace around the secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSecretFile } from "./auth.ts";
 *
 * const secret = await readSecretFile("/run/secrets/oidc/client-secret", {
 *   readTextFile: () => Promise.resolve("s3cr3t\n"),
 * });
 * assert.equal(secret, "s3cr3t");
 * ```
 */
export async function readSecretFile(path: string, options: ReadFileOptions = {}): Promise<string> {
  const text = await readFile(path, "client secret file", options);
  const secret = text.replace(/[\r\n]+$/, "");
  if (secret === "") throw credentialsError(`Client secret file ${JSON.stringify(path)} is empty`);
  if (secret.trim() !== secret) {
    throw credentialsError(
      `Client secret file ${
        JSON.stringify(path)
      } has whitespace before or after the secret: remove it (a final line break is fine)`,
    );
  }
  return secret;
}

/** A private key ready to sign client assertions. */
export interface ClientPrivateKey {
  /** The key, usable for `sign` only and not extractable. */
  readonly key: CryptoKey;
  /** The `alg` header of the assertions it signs. */
  readonly alg: SigningAlgorithm;
  /** The `kid` header, if any. */
  readonly kid?: string;
}

/** Options of {@linkcode importPrivateKey}. */
export interface PrivateKeyOptions {
  /** The algorithm to sign with; default: the JWK's `alg`, else one that fits the key. */
  alg?: SigningAlgorithm;
  /** The `kid` header; default: the JWK's `kid`. Also picks the key out of a JWK Set. */
  kid?: string;
}

/** Options of {@linkcode readPrivateKeyFile}. */
export interface PrivateKeyFileOptions extends PrivateKeyOptions, ReadFileOptions {}

type KeyType = "RSA" | "EC P-256" | "EC P-384" | "EC P-521" | "Ed25519";

/** Per algorithm, the key type it needs and how WebCrypto imports such a key. */
const ALGORITHMS: Readonly<
  Record<SigningAlgorithm, { keyType: KeyType; params: RsaHashedImportParams | EcKeyImportParams }>
> = {
  RS256: { keyType: "RSA", params: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } },
  RS384: { keyType: "RSA", params: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" } },
  RS512: { keyType: "RSA", params: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" } },
  PS256: { keyType: "RSA", params: { name: "RSA-PSS", hash: "SHA-256" } },
  PS384: { keyType: "RSA", params: { name: "RSA-PSS", hash: "SHA-384" } },
  PS512: { keyType: "RSA", params: { name: "RSA-PSS", hash: "SHA-512" } },
  ES256: { keyType: "EC P-256", params: { name: "ECDSA", namedCurve: "P-256" } },
  ES384: { keyType: "EC P-384", params: { name: "ECDSA", namedCurve: "P-384" } },
  ES512: { keyType: "EC P-521", params: { name: "ECDSA", namedCurve: "P-521" } },
  // Ed25519 takes no parameters; the cast only satisfies the shared record type.
  EdDSA: { keyType: "Ed25519", params: { name: "Ed25519" } as EcKeyImportParams },
  Ed25519: { keyType: "Ed25519", params: { name: "Ed25519" } as EcKeyImportParams },
};

/** The algorithm for a key whose configuration and JWK name none: the most widely accepted one. */
const DEFAULT_ALGORITHM: Readonly<Record<KeyType, SigningAlgorithm>> = {
  "RSA": "RS256",
  "EC P-256": "ES256",
  "EC P-384": "ES384",
  "EC P-521": "ES512",
  "Ed25519": "EdDSA",
};

function isSigningAlgorithm(value: unknown): value is SigningAlgorithm {
  return typeof value === "string" && Object.hasOwn(ALGORITHMS, value);
}

function algorithmsFor(keyType: KeyType): SigningAlgorithm[] {
  return (Object.keys(ALGORITHMS) as SigningAlgorithm[]).filter((alg) =>
    ALGORITHMS[alg].keyType === keyType
  );
}

/** Every key type's name starts with a vowel sound: an RSA, an EC P-256, an Ed25519 key. */
function article(keyType: KeyType): string {
  return `an ${keyType}`;
}

/** A problem with the key text, phrased to follow "Private key file "…"". */
class KeyProblem extends Error {}

// --- PEM ---------------------------------------------------------------------------------

/** AlgorithmIdentifier of rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters, DER. */
const RSA_ENCRYPTION = Uint8Array.of(
  0x30,
  0x0d,
  0x06,
  0x09,
  0x2a,
  0x86,
  0x48,
  0x86,
  0xf7,
  0x0d,
  0x01,
  0x01,
  0x01,
  0x05,
  0x00,
);

function derElement(tag: number, content: Uint8Array): Uint8Array {
  const length: number[] = [];
  if (content.length < 0x80) {
    length.push(content.length);
  } else {
    for (let n = content.length; n > 0; n = Math.floor(n / 256)) length.unshift(n & 0xff);
    length.unshift(0x80 | length.length);
  }
  const element = new Uint8Array(1 + length.length + content.length);
  element.set([tag, ...length]);
  element.set(content, 1 + length.length);
  return element;
}

/**
 * Wraps a PKCS#1 RSAPrivateKey (`BEGIN RSA PRIVATE KEY`, what older OpenSSL writes) in the
 * PKCS#8 structure WebCrypto imports: version 0, the rsaEncryption algorithm, the key.
 */
function pkcs1ToPkcs8(pkcs1: Uint8Array): Uint8Array<ArrayBuffer> {
  const version = Uint8Array.of(0x02, 0x01, 0x00);
  const octets = derElement(0x04, pkcs1);
  const body = new Uint8Array(version.length + RSA_ENCRYPTION.length + octets.length);
  body.set(version);
  body.set(RSA_ENCRYPTION, version.length);
  body.set(octets, version.length + RSA_ENCRYPTION.length);
  return derElement(0x30, body) as Uint8Array<ArrayBuffer>;
}

/** The PKCS#8 DER of the first private key block of a PEM text. */
function pkcs8FromPem(text: string): Uint8Array<ArrayBuffer> {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  const block = blocks.find((match) => match[1].includes("PRIVATE KEY"));
  if (block === undefined) {
    const labels = [...new Set(blocks.map((match) => match[1]))];
    throw new KeyProblem(
      labels.length === 0
        ? "holds no complete PEM block"
        : `holds no private key, only ${labels.map((l) => JSON.stringify(l)).join(", ")}`,
    );
  }
  const [, label, body] = block;
  if (label === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(body)) {
    throw new KeyProblem(
      "holds an encrypted private key: store it unencrypted (openssl pkcs8 -topk8 -nocrypt) and protect the file instead",
    );
  }
  if (label !== "PRIVATE KEY" && label !== "RSA PRIVATE KEY") {
    throw new KeyProblem(
      `holds a ${
        JSON.stringify(label)
      } block, which cannot be used: convert it to PKCS#8 ("BEGIN PRIVATE KEY") with openssl pkcs8 -topk8 -nocrypt`,
    );
  }
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = fromBase64(body);
  } catch {
    throw new KeyProblem(`holds a ${JSON.stringify(label)} block that is not valid base64`);
  }
  return label === "RSA PRIVATE KEY" ? pkcs1ToPkcs8(der) : der;
}

/** Which type of key a PKCS#8 structure holds: the one WebCrypto accepts it as. */
async function pkcs8KeyType(der: Uint8Array<ArrayBuffer>): Promise<KeyType | undefined> {
  for (const alg of ["ES256", "ES384", "ES512", "EdDSA", "RS256"] as const) {
    try {
      await crypto.subtle.importKey("pkcs8", der, ALGORITHMS[alg].params, false, ["sign"]);
      return ALGORITHMS[alg].keyType;
    } catch {
      // Not this type; try the next.
    }
  }
  return undefined;
}

// --- JWK ---------------------------------------------------------------------------------

/** The members that carry key material; `alg`, `use`, `key_ops` could only make import fail. */
const JWK_MATERIAL = ["kty", "crv", "n", "e", "d", "p", "q", "dp", "dq", "qi", "x", "y"] as const;

type JwkObject = Record<string, unknown>;

function isObject(value: unknown): value is JwkObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jwkKeyType(jwk: JwkObject): KeyType | undefined {
  if (jwk.kty === "RSA") return "RSA";
  if (jwk.kty === "EC" && (jwk.crv === "P-256" || jwk.crv === "P-384" || jwk.crv === "P-521")) {
    return `EC ${jwk.crv}`;
  }
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "Ed25519";
  return undefined;
}

/** The one private JWK of a JWK or JWK Set text, chosen by `kid` in a set. */
function jwkFromJson(text: string, kid: string | undefined): JwkObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes part of the input, which is the key: it is not passed on.
    throw new KeyProblem("starts like a JWK but is not valid JSON");
  }
  if (!isObject(parsed)) throw new KeyProblem("holds JSON that is not a JWK object");
  if (!Array.isArray(parsed.keys)) return parsed;

  const keys = parsed.keys.filter(isObject);
  if (kid !== undefined) {
    const chosen = keys.find((key) => key.kid === kid);
    if (chosen === undefined) {
      throw new KeyProblem(`holds a JWK Set without a key whose kid is ${JSON.stringify(kid)}`);
    }
    return chosen;
  }
  const candidates = keys.filter((key) => key.d !== undefined);
  if (candidates.length === 1) return candidates[0];
  throw new KeyProblem(
    candidates.length === 0
      ? "holds a JWK Set without a private key"
      : `holds a JWK Set with ${candidates.length} private keys: set oidc.keyid to the kid of the one to sign with`,
  );
}

// --- both --------------------------------------------------------------------------------

async function importKeyText(text: string, options: PrivateKeyOptions): Promise<ClientPrivateKey> {
  const trimmed = text.trim();
  let format: "pkcs8" | "jwk";
  let data: Uint8Array<ArrayBuffer> | JsonWebKey;
  let keyType: KeyType | undefined;
  let jwkAlg: unknown;
  let jwkKid: unknown;
  if (trimmed.startsWith("{")) {
    const jwk = jwkFromJson(trimmed, options.kid);
    keyType = jwkKeyType(jwk);
    if (keyType === undefined) {
      // Only names that look like JOSE names are echoed: the rest of the file is the key.
      const name = (value: unknown) =>
        typeof value === "string" && /^[A-Za-z0-9-]{1,12}$/.test(value) ? value : undefined;
      const shown = [name(jwk.kty), name(jwk.crv)].filter((part) => part !== undefined).join(" ");
      throw new KeyProblem(
        `holds a JWK ${
          shown === "" ? "of no known type" : `of type ${JSON.stringify(shown)}`
        }: expected an RSA, EC P-256/P-384/P-521 or Ed25519 key`,
      );
    }
    if (jwk.d === undefined) {
      throw new KeyProblem("holds a public JWK: private_key_jwt needs the private key (with d)");
    }
    format = "jwk";
    data = Object.fromEntries(
      JWK_MATERIAL.filter((name) => jwk[name] !== undefined).map((name) => [name, jwk[name]]),
    );
    jwkAlg = jwk.alg;
    jwkKid = jwk.kid;
  } else if (trimmed.includes("-----BEGIN ")) {
    format = "pkcs8";
    data = pkcs8FromPem(trimmed);
    keyType = await pkcs8KeyType(data);
    if (keyType === undefined) {
      throw new KeyProblem(
        "holds a private key that is not an RSA, EC P-256/P-384/P-521 or Ed25519 key",
      );
    }
  } else {
    throw new KeyProblem(
      'is neither PEM ("-----BEGIN PRIVATE KEY-----") nor a JWK (a JSON object)',
    );
  }

  const fitting = algorithmsFor(keyType);
  if (options.alg !== undefined && !fitting.includes(options.alg)) {
    throw new KeyProblem(
      `holds ${article(keyType)} key, which cannot sign ${options.alg}: set oidc.keyalg to ${
        fitting.join(", ")
      }, or use a key for ${options.alg}`,
    );
  }
  // A JWK's own alg is the issuer's statement of how the key is used; it counts if it fits.
  const alg = options.alg ??
    (isSigningAlgorithm(jwkAlg) && fitting.includes(jwkAlg) ? jwkAlg : DEFAULT_ALGORITHM[keyType]);
  let key: CryptoKey;
  try {
    key = format === "jwk"
      ? await crypto.subtle.importKey("jwk", data as JsonWebKey, ALGORITHMS[alg].params, false, [
        "sign",
      ])
      : await crypto.subtle.importKey(
        "pkcs8",
        data as Uint8Array<ArrayBuffer>,
        ALGORITHMS[alg].params,
        false,
        ["sign"],
      );
  } catch {
    throw new KeyProblem(`holds ${article(keyType)} key that cannot be imported for ${alg}`);
  }
  const kid = options.kid ?? (typeof jwkKid === "string" && jwkKid !== "" ? jwkKid : undefined);
  return kid === undefined ? { key, alg } : { key, alg, kid };
}

/**
 * Imports a private key for `private_key_jwt` from its text: PEM (PKCS#8
 * `BEGIN PRIVATE KEY`, or PKCS#1 `BEGIN RSA PRIVATE KEY`), a JWK, or a JWK
 * Set (the key named by `kid`, or its only private key). RSA, EC P-256,
 * P-384, P-521 and Ed25519 keys are supported; encrypted keys are not.
 *
 * @param text The key as written in its file.
 * @param options Algorithm and key id, when they are not to be derived.
 * @returns The key, with the `alg` and `kid` headers to sign with.
 * @throws {TokenError} `TOKEN_CREDENTIALS` when the text holds no usable
 *   private key or one that cannot sign with `options.alg`; the message
 *   says which, without quoting the text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importPrivateKey } from "./auth.ts";
 *
 * const pair = await crypto.subtle.generateKey(
 *   { name: "ECDSA", namedCurve: "P-256" },
 *   true,
 *   ["sign", "verify"],
 * ) as CryptoKeyPair;
 * const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
 * const imported = await importPrivateKey(JSON.stringify({ ...jwk, kid: "key-1" }));
 * assert.equal(imported.alg, "ES256");
 * assert.equal(imported.kid, "key-1");
 * ```
 */
export async function importPrivateKey(
  text: string,
  options: PrivateKeyOptions = {},
): Promise<ClientPrivateKey> {
  try {
    return await importKeyText(text, options);
  } catch (error) {
    if (error instanceof KeyProblem) throw credentialsError(`Private key ${error.message}`);
    throw error;
  }
}

/**
 * Reads and imports the private key of `private_key_jwt` from a file; see
 * {@linkcode importPrivateKey} for the formats.
 *
 * @param path The file, typically a key of a mounted Secret.
 * @param options Algorithm, key id, and how to read the file.
 * @returns The key, with the `alg` and `kid` headers to sign with.
 * @throws {TokenError} `TOKEN_CREDENTIALS` when the file cannot be read or
 *   holds no usable key; the message names the file, never its content.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPrivateKeyFile } from "./auth.ts";
 *
 * const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
 * const jwk = await crypto.subtle.exportKey("jwk", (pair as CryptoKeyPair).privateKey);
 * const key = await readPrivateKeyFile("/run/secrets/oidc/key.json", {
 *   readTextFile: () => Promise.resolve(JSON.stringify(jwk)),
 * });
 * assert.equal(key.alg, "EdDSA");
 * ```
 */
export async function readPrivateKeyFile(
  path: string,
  options: PrivateKeyFileOptions = {},
): Promise<ClientPrivateKey> {
  const text = await readFile(path, "private key file", options);
  try {
    return await importKeyText(text, options);
  } catch (error) {
    if (error instanceof KeyProblem) {
      throw credentialsError(`Private key file ${JSON.stringify(path)} ${error.message}`);
    }
    throw error;
  }
}
