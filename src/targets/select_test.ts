import { assert, assertThrows } from "../../tests/assert.ts";
import { compileGlob, matchesLabels, parseLabelSelector, SelectorSyntaxError } from "./select.ts";

Deno.test("compileGlob() matches * and ? and nothing else", () => {
  assert(compileGlob("team-*")("team-"));
  assert(compileGlob("team-?")("team-a"));
  assert(!compileGlob("team-?")("team-ab"));
  assert(!compileGlob("a.b")("axb"));
  assert(compileGlob("ci")("ci") && !compileGlob("ci")("cia"));
});

Deno.test("parseLabelSelector() reads the kubectl -l syntax", () => {
  const s = parseLabelSelector("a=1, b==2,c!=3,d in (x, y),e notin (z),f,!g");
  assert(matchesLabels(s, { a: "1", b: "2", d: "y", f: "" }));
  assert(!matchesLabels(s, { a: "1", b: "2", d: "y", f: "", g: "1" }));
  assert(!matchesLabels(s, { a: "1", b: "2", c: "3", d: "y", f: "" }));
  assert(!matchesLabels(s, { a: "1", b: "2", d: "y", e: "z", f: "" }));
  assert(
    matchesLabels(parseLabelSelector("ktr.appuio.ch/inject=true"), {
      "ktr.appuio.ch/inject": "true",
    }),
  );
  for (const bad of ["", "a=1,,b=2", "a in (", "=x", "a=b c"]) {
    assertThrows(() => parseLabelSelector(bad), SelectorSyntaxError);
  }
});
