/**
 * The text and JSON log formats name a level the same way, and the way `log.level` spells it:
 * `WARN`, not `WARNING` in one and `WARN` in the other.
 */
import { assertEquals, assertMatch } from "./assert.ts";
import { spawnRefresher } from "./fixtures/refresher_process.ts";

const ENV = {
  KTR_SECRET_NAME: "api-token",
  KTR_SECRET_NAMESPACE: "team-a",
  KTR_OIDC_TOKENURL: "https://auth.example.com/token",
  KTR_OIDC_CLIENTID: "app",
  KTR_OIDC_CLIENTSECRET: "not-shown",
  // Misspelt on purpose: a warning at start.
  KTR_SECRETNAME: "api-token",
};

/** The level of the start-up warning and of the credentials error in one format. */
async function levels(format: "text" | "json"): Promise<string[]> {
  // No Kubernetes credentials: one warning, one error, exit 3.
  await using refresher = spawnRefresher({
    env: { ...ENV, KTR_LOG_FORMAT: format },
    args: ["--http.address=off"],
  });
  const { code, output } = await refresher.exited;
  assertEquals(code, 3, output);
  const lines = output.trim().split("\n");
  return lines.map((line) =>
    format === "json"
      ? JSON.parse(line).level
      : line.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z (\S+) /)?.[1] ?? line
  );
}

Deno.test("text and JSON logs name the warning level WARN, like log.level's warn", async () => {
  const text = await levels("text");
  const json = await levels("json");
  assertEquals(text, json);
  assertEquals(text, ["WARN", "ERROR"]);
  for (const level of text) assertMatch(level.toLowerCase(), /^(debug|info|warn|error)$/);
});
