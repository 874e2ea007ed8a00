import { assert, assertEquals, assertMatch, assertNotIncludes } from "../tests/assert.ts";
import {
  configureLogging,
  fillTemplate,
  getLogger,
  jsonFormatter,
  LOG_CATEGORY,
  type LogRecord,
  resetLogging,
  streamSink,
  textFormatter,
} from "./log.ts";

/** Runs `body` with every record of the tool at `level` and above going into an array. */
function withRecords(level: "debug" | "warning", body: (records: LogRecord[]) => void): void {
  const records: LogRecord[] = [];
  configureLogging({ level, format: "json", sink: (r) => records.push(r) });
  try {
    body(records);
  } finally {
    resetLogging();
  }
}

/** A record at the epoch, the way the logger would make it. */
function record(fields: Partial<LogRecord>): LogRecord {
  return {
    category: ["ktr", "refresh"],
    level: "info",
    timestamp: 0,
    message: ["Token refreshed"],
    rawMessage: "Token refreshed",
    properties: {},
    ...fields,
  };
}

Deno.test("a template's placeholders are filled from the properties, text and values alternating", () => {
  assertEquals(
    fillTemplate("Secret {secret} in namespace {namespace} written", {
      secret: "api-token",
      namespace: "team-a",
    }),
    ["Secret ", "api-token", " in namespace ", "team-a", " written"],
  );
  assertEquals(fillTemplate("{error}", { error: "boom" }), ["", "boom", ""]);
  assertEquals(fillTemplate("{a}{b}", { a: 1, b: 2 }), ["", 1, "", 2, ""]);
  // A value keeps its type; a name with no property gives undefined.
  assertEquals(fillTemplate("Retry in {s} s: {missing}", { s: 1.5 }), [
    "Retry in ",
    1.5,
    " s: ",
    undefined,
    "",
  ]);
  // Spaces around a name are ignored unless a property has the name with its spaces.
  assertEquals(fillTemplate("{ a }", { a: 1 }), ["", 1, ""]);
  assertEquals(fillTemplate("{ a }", { " a ": 1, a: 2 }), ["", 1, ""]);
  // Only own properties: a template cannot reach into Object.prototype.
  assertEquals(fillTemplate("{constructor}", {}), ["", undefined, ""]);
  assertEquals(fillTemplate("", {}), [""]);
  assertEquals(fillTemplate("Token refreshed", { secret: "a" }), ["Token refreshed"]);
});

Deno.test("doubled braces are literal braces; a brace with no closing brace is text", () => {
  assertEquals(fillTemplate("{{secret}}", { secret: "a" }), ["{secret}"]);
  assertEquals(fillTemplate("{{{secret}}}", { secret: "a" }), ["{", "a", "}"]);
  assertEquals(fillTemplate('JSON {{"a": {n}}}', { n: 1 }), ['JSON {"a": ', 1, "}"]);
  assertEquals(fillTemplate("open {secret", { secret: "a" }), ["open {secret"]);
  assertEquals(fillTemplate("{a}}", { a: 1 }), ["", 1, "}"]);
  // Without any opening brace the template is kept as it is, doubled closing braces too.
  assertEquals(fillTemplate("a}}b", {}), ["a}}b"]);
});

Deno.test("records below the configured level are dropped", () => {
  withRecords("warning", (records) => {
    const log = getLogger([LOG_CATEGORY, "refresh"]);
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    log.fatal("f");
    assertEquals(records.map((r) => [r.level, r.rawMessage]), [
      ["warning", "w"],
      ["error", "e"],
      ["fatal", "f"],
    ]);
  });
  withRecords("debug", (records) => {
    getLogger(LOG_CATEGORY).debug("d");
    assertEquals(records.map((r) => r.level), ["debug"]);
  });
});

Deno.test("only the tool's categories are written, and only while logging is configured", () => {
  const log = getLogger([LOG_CATEGORY, "refresh"]);
  // Got before configureLogging(): it writes once logging is configured, not before.
  log.info("before");
  withRecords("debug", (records) => {
    log.info("Token refreshed");
    getLogger([LOG_CATEGORY]).info("Starting");
    getLogger(["other"]).error("not ours");
    getLogger([]).error("root");
    assertEquals(records.map((r) => [r.category, r.rawMessage]), [
      [["ktr", "refresh"], "Token refreshed"],
      [["ktr"], "Starting"],
    ]);
  });
  // After resetLogging() nothing is written and nothing throws.
  log.info("after");
});

Deno.test("a record holds its template, the filled message, a copy of the properties and the time", () => {
  withRecords("debug", (records) => {
    const properties: Record<string, unknown> = { secret: "api-token", failures: 2 };
    const before = Date.now();
    getLogger([LOG_CATEGORY, "refresh"]).warn("Secret {secret} failed", properties);
    properties.secret = "changed later";
    assertEquals(records.length, 1);
    const [r] = records;
    assertEquals(r.level, "warning");
    assertEquals(r.rawMessage, "Secret {secret} failed");
    assertEquals(r.message, ["Secret ", "api-token", " failed"]);
    assertEquals(r.properties, { secret: "api-token", failures: 2 });
    assert(r.timestamp >= before && r.timestamp <= Date.now());
    getLogger(LOG_CATEGORY).info("Shutting down");
    assertEquals(records[1].properties, {});
    assertEquals(records[1].message, ["Shutting down"]);
  });
});

Deno.test("a sink that throws does not break the caller, and the next record still reaches it", () => {
  let calls = 0;
  configureLogging({
    level: "debug",
    format: "json",
    sink: () => {
      calls++;
      throw new Error("standard error is closed");
    },
  });
  try {
    const log = getLogger([LOG_CATEGORY, "refresh"]);
    log.error("Refresh failed: {error}", { error: "timeout" });
    log.info("Token refreshed");
    assertEquals(calls, 2);
  } finally {
    resetLogging();
  }
});

Deno.test("a JSON line: timestamp, level, message with values filled in, logger, then the fields", () => {
  assertEquals(
    jsonFormatter(record({
      level: "warning",
      timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      rawMessage: "Secret {secret} failed {failures} times",
      message: ["Secret ", "api-token", " failed ", 2, " times"],
      properties: { secret: "api-token", failures: 2, namespace: "team-a", gone: undefined },
    })),
    '{"@timestamp":"2026-01-02T03:04:05.006Z","level":"WARN","message":"Secret \\"api-token\\" failed 2 times","logger":"ktr.refresh","secret":"api-token","failures":2,"namespace":"team-a"}\n',
  );
  assertEquals(
    jsonFormatter(record({ level: "fatal", category: ["ktr"] })),
    '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"FATAL","message":"Token refreshed","logger":"ktr"}\n',
  );
  // A value with no property reads "undefined" in the message; objects are written as JSON.
  assertEquals(
    jsonFormatter(record({
      level: "debug",
      message: ["a ", undefined, " b ", { n: [1, null] }, " c ", true, ""],
    })),
    '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"DEBUG","message":"a undefined b {\\"n\\":[1,null]} c true","logger":"ktr.refresh"}\n',
  );
});

Deno.test("a JSON line escapes control characters and survives cycles, big integers and errors", () => {
  // JSON.stringify escapes C0 controls; DEL and C1 (the 8-bit CSI) are escaped on top.
  assertEquals(
    jsonFormatter(record({ properties: { value: "a\u001b[31m\u009b31m\u007f\u0085\u00a0\n" } })),
    '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"INFO","message":"Token refreshed","logger":"ktr.refresh","value":"a\\u001b[31m\\u009b31m\\u007f\\u0085\u00a0\\n"}\n',
  );
  const loop: Record<string, unknown> = { a: 1 };
  loop.self = loop;
  const shared = { x: 1 };
  assertEquals(
    jsonFormatter(record({
      message: ["Loop ", loop, ""],
      properties: { loop, twice: [shared, shared], big: 10n },
    })),
    '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"INFO","message":"Loop {\\"a\\":1,\\"self\\":\\"[Circular]\\"}","logger":"ktr.refresh","loop":{"a":1,"self":"[Circular]"},"twice":[{"x":1},{"x":1}],"big":"10"}\n',
  );
  const error = new Error("boom", { cause: "disk full" });
  error.stack = "Error: boom\n    at here";
  assertEquals(
    jsonFormatter(record({ properties: { error } })),
    '{"@timestamp":"1970-01-01T00:00:00.000Z","level":"INFO","message":"Token refreshed","logger":"ktr.refresh","error":{"name":"Error","message":"boom","stack":"Error: boom\\n    at here","cause":"disk full"}}\n',
  );
});

Deno.test("the logger adds nothing to what the caller gave: no secret it was not handed", () => {
  const written: string[] = [];
  const stream = {
    writeSync(p: Uint8Array) {
      written.push(new TextDecoder().decode(p));
      return p.length;
    },
  };
  for (const format of ["json", "text"] as const) {
    written.length = 0;
    configureLogging({ level: "debug", format, sink: streamSink(format, stream) });
    try {
      // The token is in scope here, as in the refresh loop, but not given to the logger.
      const token = "eyJ-not-to-be-logged";
      getLogger([LOG_CATEGORY, "refresh"]).info("Token refreshed", {
        secret: "api-token",
        tokenLength: token.length,
      });
    } finally {
      resetLogging();
    }
    assertEquals(written.length, 1);
    assertNotIncludes(written[0], "eyJ");
    if (format === "json") {
      const line = JSON.parse(written[0]);
      assertEquals(Object.keys(line), [
        "@timestamp",
        "level",
        "message",
        "logger",
        "secret",
        "tokenLength",
      ]);
      assertEquals(line.tokenLength, 20);
    } else {
      assertMatch(
        written[0],
        /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}Token refreshed secret=api-token tokenLength=20\n$/,
      );
    }
  }
});

Deno.test("the text format is unchanged: fields not in the message, WARN padded", () => {
  assertEquals(
    textFormatter(record({
      level: "warning",
      rawMessage: "Secret {secret} failed",
      message: ["Secret ", "api-token", " failed"],
      properties: { secret: "api-token", error: "connection refused", failures: 2 },
    })),
    '1970-01-01T00:00:00.000Z WARN  Secret api-token failed error="connection refused" failures=2\n',
  );
});
