import {
  assert,
  assertEquals,
  assertNotIncludes,
  assertRejects,
  assertStringIncludes,
} from "../../tests/assert.ts";
import {
  type ClientPrivateKey,
  importPrivateKey,
  readPrivateKeyFile,
  readSecretFile,
} from "./auth.ts";
import { TokenError } from "./error.ts";

const SECRET = "client-secret-value-5c2e";

function reading(text: string) {
  return { readTextFile: () => Promise.resolve(text) };
}

function failingWith(error: Error) {
  return { readTextFile: () => Promise.reject(error) };
}

// --- client secret files --------------------------------------------------------------------

Deno.test("readSecretFile() drops the line break an editor adds", async () => {
  for (const text of [SECRET, `${SECRET}\n`, `${SECRET}\r\n`, `${SECRET}\n\n`]) {
    assertEquals(await readSecretFile("/run/secret", reading(text)), SECRET);
  }
});

Deno.test("readSecretFile() keeps a secret's inner characters as they are", async () => {
  assertEquals(await readSecretFile("/s", reading("a b\tc\n")), "a b\tc");
});

Deno.test("readSecretFile() refuses an empty file and surrounding whitespace, never quoting the secret", async () => {
  for (
    const [text, expected] of [
      ["", /is empty$/],
      ["\n", /is empty$/],
      [` ${SECRET}`, /whitespace/],
      [
        `${SECRET} \n`,
        /whitespace/,
      ],
    ] as const
  ) {
    const error = await assertRejects(
      () => readSecretFile("/run/secret", reading(text)),
      TokenError,
    );
    assertEquals(error.code, "TOKEN_CREDENTIALS");
    assert(expected.test(error.message), error.message);
    assertStringIncludes(error.message, '"/run/secret"');
    assertNotIncludes(error.message, SECRET);
  }
});

Deno.test("readSecretFile() says why the file cannot be read", async () => {
  const cases = [
    [new Deno.errors.NotFound("gone"), "no such file"],
    [new Deno.errors.PermissionDenied("no"), "permission denied"],
  ] as const;
  for (const [cause, reason] of cases) {
    const error = await assertRejects(
      () => readSecretFile("/run/secret", failingWith(cause)),
      TokenError,
    );
    assertEquals(error.code, "TOKEN_CREDENTIALS");
    assertEquals(error.message, `Cannot read client secret file "/run/secret": ${reason}`);
  }
});

Deno.test("readSecretFile() reads a real file by default", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, `${SECRET}\n`);
    assertEquals(await readSecretFile(path), SECRET);
  } finally {
    await Deno.remove(path);
  }
});

// --- private keys ---------------------------------------------------------------------------

type KeyKind = "RSA" | "RSA-PSS" | "P-256" | "P-384" | "P-521" | "Ed25519";

function generationParams(kind: KeyKind): RsaHashedKeyGenParams | EcKeyGenParams | Algorithm {
  switch (kind) {
    case "RSA":
    case "RSA-PSS":
      return {
        name: kind === "RSA" ? "RSASSA-PKCS1-v1_5" : "RSA-PSS",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      };
    case "Ed25519":
      return { name: "Ed25519" };
    default:
      return { name: "ECDSA", namedCurve: kind };
  }
}

async function generate(kind: KeyKind): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(generationParams(kind), true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

async function pkcs8Pem(pair: CryptoKeyPair): Promise<string> {
  return pem(
    "PRIVATE KEY",
    new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey)),
  );
}

async function privateJwk(pair: CryptoKeyPair): Promise<JsonWebKey> {
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  delete jwk.key_ops;
  delete jwk.ext;
  return jwk;
}

/** The content of the DER element at `offset`: [start, end) of its value, and its end. */
function derElement(der: Uint8Array, offset: number): { start: number; end: number } {
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i];
    start += octets;
  }
  return { start, end: start + length };
}

/** The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo: its third element's content. */
async function pkcs1Pem(pair: CryptoKeyPair): Promise<string> {
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const outer = derElement(der, 0);
  const version = derElement(der, outer.start);
  const algorithm = derElement(der, version.end);
  const key = derElement(der, algorithm.end);
  return pem("RSA PRIVATE KEY", der.slice(key.start, key.end));
}

/** Proves the imported key is the private half of `pair`: its signature verifies. */
async function assertSignsFor(imported: ClientPrivateKey, pair: CryptoKeyPair) {
  const data = new TextEncoder().encode("header.payload");
  const algorithm = imported.key.algorithm.name === "RSA-PSS"
    ? { name: "RSA-PSS", saltLength: 32 }
    : imported.key.algorithm.name === "ECDSA"
    ? { name: "ECDSA", hash: "SHA-256" }
    : imported.key.algorithm;
  const signature = await crypto.subtle.sign(algorithm, imported.key, data);
  const publicJwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const verifier = await crypto.subtle.importKey(
    "jwk",
    { ...publicJwk, alg: undefined },
    imported.key.algorithm as RsaHashedImportParams,
    false,
    ["verify"],
  );
  assert(await crypto.subtle.verify(algorithm, verifier, signature, data), "signature verifies");
}

async function credentialsError(text: string, options = {}): Promise<TokenError> {
  const error = await assertRejects(
    () => readPrivateKeyFile("/run/key", { ...reading(text), ...options }),
    TokenError,
  );
  assertEquals(error.code, "TOKEN_CREDENTIALS");
  assert(error.message.startsWith('Private key file "/run/key" '), error.message);
  assertEquals(error.cause, undefined);
  return error;
}

Deno.test("importPrivateKey() picks the algorithm from a PKCS#8 PEM key's type", async () => {
  const cases = [
    ["RSA", "RS256", "RSASSA-PKCS1-v1_5"],
    ["P-256", "ES256", "ECDSA"],
    ["P-384", "ES384", "ECDSA"],
    ["P-521", "ES512", "ECDSA"],
    ["Ed25519", "EdDSA", "Ed25519"],
  ] as const;
  for (const [kind, alg, name] of cases) {
    const pair = await generate(kind);
    const imported = await importPrivateKey(await pkcs8Pem(pair));
    assertEquals(imported.alg, alg, kind);
    assertEquals(imported.key.algorithm.name, name);
    assertEquals(imported.kid, undefined);
    assertEquals(imported.key.extractable, false);
    assertEquals(imported.key.usages, ["sign"]);
    if (kind === "P-256" || kind === "RSA" || kind === "Ed25519") {
      await assertSignsFor(imported, pair);
    }
  }
});

Deno.test("importPrivateKey() imports an RSA key for the configured algorithm", async () => {
  const pair = await generate("RSA");
  const text = await pkcs8Pem(pair);
  for (
    const [alg, name, hash] of [
      ["PS256", "RSA-PSS", "SHA-256"],
      ["RS512", "RSASSA-PKCS1-v1_5", "SHA-512"],
    ] as const
  ) {
    const imported = await importPrivateKey(text, { alg, kid: "rsa-1" });
    assertEquals(imported.alg, alg);
    assertEquals(imported.kid, "rsa-1");
    assertEquals(imported.key.algorithm.name, name);
    assertEquals((imported.key.algorithm as RsaHashedKeyAlgorithm).hash.name, hash);
  }
});

Deno.test("importPrivateKey() reads the PKCS#1 PEM that older OpenSSL writes", async () => {
  const pair = await generate("RSA");
  const text = await pkcs1Pem(pair);
  assertStringIncludes(text, "BEGIN RSA PRIVATE KEY");
  const imported = await importPrivateKey(text);
  assertEquals(imported.alg, "RS256");
  await assertSignsFor(imported, pair);
});

Deno.test("importPrivateKey() finds the key among other PEM blocks", async () => {
  const pair = await generate("P-256");
  const certificate = pem("CERTIFICATE", new Uint8Array([1, 2, 3]));
  const imported = await importPrivateKey(`${certificate}${await pkcs8Pem(pair)}`);
  assertEquals(imported.alg, "ES256");
});

Deno.test("importPrivateKey() takes alg and kid from a JWK unless configured", async () => {
  const pair = await generate("RSA");
  const jwk = { ...await privateJwk(pair), kid: "from-jwk", alg: "PS256", use: "sig" };
  const fromJwk = await importPrivateKey(JSON.stringify(jwk));
  assertEquals([fromJwk.alg, fromJwk.kid], ["PS256", "from-jwk"]);
  assertEquals(fromJwk.key.algorithm.name, "RSA-PSS");
  const configured = await importPrivateKey(JSON.stringify(jwk), { alg: "RS256", kid: "mine" });
  assertEquals([configured.alg, configured.kid], ["RS256", "mine"]);

  // An alg meant for another use of the key does not decide how assertions are signed.
  const encryption = await importPrivateKey(JSON.stringify({ ...jwk, alg: "RSA-OAEP" }));
  assertEquals(encryption.alg, "RS256");
});

Deno.test("importPrivateKey() reads EC and Ed25519 JWKs", async () => {
  for (const [kind, alg] of [["P-256", "ES256"], ["Ed25519", "EdDSA"]] as const) {
    const pair = await generate(kind);
    const imported = await importPrivateKey(JSON.stringify(await privateJwk(pair)));
    assertEquals(imported.alg, alg);
    await assertSignsFor(imported, pair);
  }
  const ed = await generate("Ed25519");
  const named = await importPrivateKey(JSON.stringify(await privateJwk(ed)), { alg: "Ed25519" });
  assertEquals(named.alg, "Ed25519");
});

Deno.test("importPrivateKey() picks the private key of a JWK Set, by kid when there are several", async () => {
  const first = { ...await privateJwk(await generate("P-256")), kid: "a" };
  const second = { ...await privateJwk(await generate("P-256")), kid: "b" };
  const publicOnly = { ...first, d: undefined, kid: "pub" };
  const single = await importPrivateKey(JSON.stringify({ keys: [publicOnly, second] }));
  assertEquals(single.kid, "b");
  const chosen = await importPrivateKey(JSON.stringify({ keys: [first, second] }), { kid: "a" });
  assertEquals(chosen.kid, "a");

  const ambiguous = await credentialsError(JSON.stringify({ keys: [first, second] }));
  assertStringIncludes(ambiguous.message, "2 private keys: set oidc.keyid");
  const missing = await credentialsError(JSON.stringify({ keys: [first] }), { kid: "c" });
  assertStringIncludes(missing.message, 'without a key whose kid is "c"');
  const none = await credentialsError(JSON.stringify({ keys: [publicOnly] }));
  assertStringIncludes(none.message, "without a private key");
});

Deno.test("readPrivateKeyFile() refuses a key that cannot sign with the configured algorithm", async () => {
  const ec = await pkcs8Pem(await generate("P-256"));
  const error = await credentialsError(ec, { alg: "RS256" });
  assertEquals(
    error.message,
    'Private key file "/run/key" holds an EC P-256 key, which cannot sign RS256: set oidc.keyalg to ES256, or use a key for RS256',
  );
  const curve = await credentialsError(ec, { alg: "ES384" });
  assertStringIncludes(curve.message, "cannot sign ES384");
  const rsa = await credentialsError(await pkcs8Pem(await generate("RSA")), { alg: "EdDSA" });
  assertStringIncludes(
    rsa.message,
    "an RSA key, which cannot sign EdDSA: set oidc.keyalg to RS256, RS384, RS512, PS256, PS384, PS512",
  );
});

Deno.test("readPrivateKeyFile() explains unusable files without quoting them", async () => {
  const jwk = await privateJwk(await generate("P-256"));
  const d = jwk.d!;
  const cases = [
    [JSON.stringify({ ...jwk, d: undefined }), "holds a public JWK"],
    [JSON.stringify({ kty: "oct", k: d }), 'holds a JWK of type "oct"'],
    [JSON.stringify({ kty: d, k: d }), "holds a JWK of no known type"],
    [`{"kty":"EC","d":"${d}"`, "is not valid JSON"],
    ["[1, 2]", "is neither PEM"],
    [`${d}\n`, "is neither PEM"],
    [pem("CERTIFICATE", new Uint8Array([1])), 'holds no private key, only "CERTIFICATE"'],
    ["-----BEGIN PRIVATE KEY-----\nAAAA\n", "holds no complete PEM block"],
    [pem("ENCRYPTED PRIVATE KEY", new Uint8Array([1])), "holds an encrypted private key"],
    [
      "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
      "holds an encrypted private key",
    ],
    [pem("EC PRIVATE KEY", new Uint8Array([1])), "openssl pkcs8 -topk8 -nocrypt"],
    [pem("OPENSSH PRIVATE KEY", new Uint8Array([1])), '"OPENSSH PRIVATE KEY" block'],
    [
      pem("PRIVATE KEY", new Uint8Array([1, 2, 3])),
      "is not an RSA, EC P-256/P-384/P-521 or Ed25519",
    ],
    ["-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", "not valid base64"],
  ] as const;
  for (const [text, expected] of cases) {
    const error = await credentialsError(text);
    assertStringIncludes(error.message, expected);
    assertNotIncludes(error.message, d);
  }
});

Deno.test("readPrivateKeyFile() says why the file cannot be read", async () => {
  const error = await assertRejects(
    () => readPrivateKeyFile("/run/key", failingWith(new Deno.errors.NotFound("x"))),
    TokenError,
  );
  assertEquals(error.code, "TOKEN_CREDENTIALS");
  assertEquals(error.message, 'Cannot read private key file "/run/key": no such file');
});

Deno.test("importPrivateKey() reports problems without a file name", async () => {
  const error = await assertRejects(() => importPrivateKey("nope"), TokenError);
  assertEquals(error.code, "TOKEN_CREDENTIALS");
  assert(error.message.startsWith("Private key is neither PEM"), error.message);
});
