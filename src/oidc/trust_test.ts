import { assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { TokenError } from "./error.ts";
import { createTrustingClient, readCaCertificates } from "./trust.ts";

const BLOCK = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----";

function reading(text: string) {
  return { readTextFile: () => Promise.resolve(text) };
}

Deno.test("readCaCertificates() returns every certificate of a bundle", async () => {
  const bundle = `# private CA\n${BLOCK}\nsome text\n${BLOCK.replace("AAAA", "BBBB")}\n`;
  const certificates = await readCaCertificates("/etc/ca.pem", reading(bundle));
  assertEquals(certificates, [BLOCK, BLOCK.replace("AAAA", "BBBB")]);
});

Deno.test("readCaCertificates() refuses a file without a certificate", async () => {
  for (const text of ["", "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n", "MIIB"]) {
    const error = await assertRejects(
      () => readCaCertificates("/etc/ca.pem", reading(text)),
      TokenError,
    );
    assertEquals(error.code, "TOKEN_TRUST");
    assertEquals(
      error.message,
      'CA file "/etc/ca.pem" holds no PEM certificate: expected "-----BEGIN CERTIFICATE-----" blocks',
    );
  }
});

Deno.test("readCaCertificates() says why the file cannot be read", async () => {
  const error = await assertRejects(
    () =>
      readCaCertificates("/etc/ca.pem", {
        readTextFile: () => Promise.reject(new Deno.errors.NotFound("x")),
      }),
    TokenError,
  );
  assertEquals(error.code, "TOKEN_TRUST");
  assertEquals(error.message, 'Cannot read CA file "/etc/ca.pem": no such file');
});

Deno.test("createTrustingClient() refuses a certificate that cannot be parsed", async () => {
  const error = await assertRejects(
    () => createTrustingClient("/etc/ca.pem", reading(BLOCK)),
    TokenError,
  );
  assertEquals(error.code, "TOKEN_TRUST");
  assertStringIncludes(
    error.message,
    'CA file "/etc/ca.pem" holds a certificate that cannot be used',
  );
});
