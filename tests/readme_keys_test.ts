/**
 * README against the code it describes: the configuration table is the key table of
 * `src/config/` (the same descriptions and defaults `--help` prints), and the list of variables
 * the binary may read is deno.json's `incluster` set.
 */
import { assert, assertEquals } from "./assert.ts";
import { helpLine, KEYS, keyTableRows } from "../src/config/mod.ts";
import type { KeyDefinition } from "../src/config/mod.ts";
import { parseCommandLine } from "../src/cli.ts";
import denoJson from "../deno.json" with { type: "json" };

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

/** The rows of the README table whose header starts with `| key | environment`. */
function configurationTable(): string[][] {
  const lines = README.split("\n");
  const start = lines.findIndex((l) => /^\|\s*key\s*\|\s*environment\s*\|/.test(l));
  assert(start >= 0, "README has no configuration table");
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(line.slice(1, -1).split("|").map((cell) => cell.trim()));
  }
  return rows;
}

Deno.test("README's configuration table is the key table, row by row", () => {
  const expected = keyTableRows().map((r) => [r.key, r.environment, r.flag, r.default, r.meaning]);
  const actual = configurationTable();
  for (const [i, row] of expected.entries()) {
    assertEquals(
      actual[i],
      row,
      `README row ${i + 1} differs from the key table; the row should read:\n| ${
        row.join(" | ")
      } |`,
    );
  }
  assertEquals(actual.length, expected.length, "README has rows for keys that do not exist");
});

Deno.test("--help says for every key what README's row says", async () => {
  const result = await parseCommandLine(["--help"], {});
  assert(result.kind === "help");
  // Unwrap the description column.
  const help = result.text.replaceAll(/\n {20,}/g, " ");
  const rows = keyTableRows();
  for (const [i, definition] of (KEYS as readonly KeyDefinition[]).entries()) {
    assert(help.includes(helpLine(definition)), `--help lacks: ${helpLine(definition)}`);
    // The same words, code marks aside.
    const meaning = rows[i].meaning.replaceAll("`", "").replace(/; secret, never shown$/, "");
    assert(help.includes(meaning), `--help and README differ for ${definition.key}`);
  }
});

Deno.test("README lists exactly the variables the incluster permission set may read", () => {
  const paragraph = README.split("\n\n").find((p) =>
    p.startsWith("The in-cluster build reads only")
  );
  assert(paragraph !== undefined, "README has no list of the variables the in-cluster build reads");
  const named = [...paragraph.matchAll(/`([A-Z][A-Z_*]+)`/g)].map((m) => m[1]);
  // "in either case": the proxy variables are named once, upper case.
  const listed = new Set(
    named.flatMap((name) =>
      name.endsWith("_PROXY") && /either case/.test(paragraph) ? [name, name.toLowerCase()] : [name]
    ),
  );
  assertEquals(
    [...listed].sort(),
    [...denoJson.permissions.incluster.env].sort(),
    "README and deno.json's incluster env list differ",
  );
});
