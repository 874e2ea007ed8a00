import { assertEquals, assertMatch, assertNotIncludes } from "../tests/assert.ts";
import { classifySendFailure, describeSendFailure, proxyFor } from "./http.ts";

const refused = new TypeError("fetch failed", {
  cause: new Error(
    "error sending request for url (https://auth.example.com/token): client error (Connect): tcp connect error: Connection refused (os error 111)",
  ),
});

Deno.test("proxyFor() picks HTTPS_PROXY or HTTP_PROXY by scheme, either case, and honours NO_PROXY", () => {
  const env = { HTTPS_PROXY: "http://proxy.example:3128", http_proxy: "proxy.example:8080" };
  assertEquals(proxyFor("https://auth.example.com/token", env), {
    proxy: "http://proxy.example:3128",
    variable: "HTTPS_PROXY",
  });
  assertEquals(proxyFor("http://127.0.0.1:8080/token", env), {
    proxy: "http://proxy.example:8080",
    variable: "http_proxy",
  });
  assertEquals(proxyFor("https://auth.example.com/token", {}), undefined);
  for (
    const noProxy of ["*", "auth.example.com", ".example.com", "example.com", "x, example.com:443"]
  ) {
    assertEquals(
      proxyFor("https://auth.example.com/token", { ...env, NO_PROXY: noProxy }),
      undefined,
      noProxy,
    );
  }
  assertEquals(proxyFor("https://[::1]:6443/api", { ...env, no_proxy: "::1" }), undefined);
  assertEquals(
    proxyFor("https://auth.example.com/token", { ...env, NO_PROXY: "ample.com,other.example" })
      ?.variable,
    "HTTPS_PROXY",
  );
});

Deno.test("proxyFor() never shows the proxy's user name or password", () => {
  const route = proxyFor("https://auth.example.com/token", {
    HTTPS_PROXY: "http://alice:proxy-password-31f@proxy.example:3128",
  });
  assertEquals(route?.proxy, "http://proxy.example:3128");
  assertNotIncludes(JSON.stringify(route), "proxy-password-31f");
});

Deno.test("describeSendFailure() blames an unreachable proxy, not the endpoint behind it", () => {
  const route = { proxy: "http://127.0.0.1:3128", variable: "HTTPS_PROXY" };
  assertEquals(classifySendFailure(refused).kind, "refused");
  assertEquals(
    describeSendFailure(refused, route),
    "the proxy http://127.0.0.1:3128 (from HTTPS_PROXY) is not reachable: tcp connect error: Connection refused (os error 111); check HTTPS_PROXY, or list the host in NO_PROXY",
  );
  assertEquals(
    describeSendFailure(refused),
    "tcp connect error: Connection refused (os error 111)",
  );
  // The proxy answered but the tunnel broke: the proxy is named as the way, not as the failure.
  const tunnel = new TypeError("fetch failed", {
    cause: new Error(
      "error sending request for url (https://auth.example.com/token): client error (Connect): unexpected eof while tunneling",
    ),
  });
  assertMatch(
    describeSendFailure(tunnel, route),
    /^connection lost: unexpected eof while tunneling \(through the proxy http:\/\/127\.0\.0\.1:3128 from HTTPS_PROXY\)$/,
  );
});
