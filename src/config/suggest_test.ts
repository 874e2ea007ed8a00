import { assert, assertEquals } from "../../tests/assert.ts";
import { envName, envWarnings, KEYS, probedEnvNames } from "./mod.ts";

Deno.test("probedEnvNames() holds every real name and the split, joined, plural and percentage spellings", () => {
  const names = probedEnvNames();
  for (const { key } of KEYS) assert(names.includes(envName(key)), envName(key));
  for (
    const name of [
      "KTR_OIDC_CLIENT_ID",
      "KTR_OIDC_CLIENT_SECRET",
      "KTR_OIDC_CLIENT_SECRET_FILE",
      "KTR_OIDC_TOKEN_URL",
      "KTR_TOKEN_URL",
      "KTR_SECRETNAME",
      "KTR_CLIENTID",
      "KTR_KUBE_SERVICE_ACCOUNT_DIR",
      "KTR_OIDC_RESOURCES",
      "KTR_OIDC_SCOPES",
      "KTR_RENEW_PERCENTAGE",
      "KTR_RENEW_PCT",
      "KTR_DRYRUN",
    ]
  ) {
    assert(names.includes(name), `${name} is not probed`);
  }
  assertEquals(new Set(names).size, names.length, "duplicates");
});

Deno.test("envWarnings() names the key of every probed misspelling, whether probed or listed", () => {
  const real = new Set(KEYS.map((d) => envName(d.key)));
  for (const name of probedEnvNames().filter((n) => !real.has(n))) {
    const [warning] = envWarnings({ [name]: "x" });
    const meant = warning?.match(/did you mean (KTR_\w+)\?$/)?.[1];
    assert(meant !== undefined && real.has(meant), `${name}: ${warning}`);
  }
  assertEquals(envWarnings({ KTR_OIDC_CLIENT_ID: "x", KTR_RENEW_PERCENTAGE: "67" }), [
    "Ignoring unknown environment variable KTR_OIDC_CLIENT_ID: did you mean KTR_OIDC_CLIENTID?",
    "Ignoring unknown environment variable KTR_RENEW_PERCENTAGE: did you mean KTR_RENEW_PERCENT?",
  ]);
});
