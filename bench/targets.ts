/**
 * What many targets cost: resident memory and the wall time of one cycle (one token, every
 * Secret written with bounded concurrency) at 1, 100 and 1,000 Secrets, against a small fake
 * Kubernetes API on loopback (namespaces list and watch, Secret lists, watches and applies), with
 * a token source that answers at once. Each size runs in a process of its own, so the figures do
 * not share a heap.
 *
 * Usage: `deno run --allow-all bench/targets.ts [--json]`.
 *
 * @module
 */
import { KubeClient } from "../src/kube/client.ts";
import { parseTargets } from "../src/targets/config.ts";
import { TargetKeeper } from "../src/targets/keeper.ts";
import type { Token, TokenSource } from "../src/token.ts";

/** What one size measured. */
export interface TargetsFigure {
  /** Secrets kept. */
  secrets: number;
  /** Resident memory after three cycles and a collection, bytes. */
  rssBytes: number;
  /** Median wall time of one cycle (token + every write), ms. */
  cycleMs: number;
  /** Applies sent per cycle. */
  writesPerCycle: number;
  /** V8 heap in use after the collection, bytes. */
  heapUsedBytes: number;
}

/** A fake API server: just what the keeper asks for. */
function fakeApi(namespaces: number): { url: string; close(): Promise<void> } {
  const items = Array.from({ length: namespaces }, (_, i) => ({
    metadata: { name: `ns-${i}`, labels: { "ktr.appuio.ch/inject": "true" } },
    status: { phase: "Active" },
  }));
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.searchParams.get("watch") === "1") {
      // Open and quiet: a bookmark now and then would be all a real server sends.
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          streams.add(c);
        },
        cancel() {},
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    if (req.method === "GET" && url.pathname === "/api/v1/namespaces") {
      return Response.json({ kind: "NamespaceList", metadata: { resourceVersion: "1" }, items });
    }
    if (req.method === "GET" && url.pathname === "/api/v1/secrets") {
      return Response.json({ kind: "SecretList", metadata: { resourceVersion: "1" }, items: [] });
    }
    if (req.method === "PATCH") {
      const body = await req.json();
      return Response.json({
        ...body,
        metadata: { ...body.metadata, resourceVersion: "2", uid: "u" },
      });
    }
    return new Response("not found", { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      for (const c of streams) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      await server.shutdown();
    },
  };
}

async function child(secrets: number, apiUrl: string): Promise<TargetsFigure> {
  const client = new KubeClient({
    server: new URL(apiUrl),
    authorize: () => Promise.resolve({ authorization: "Bearer bench" }),
    description: "the bench's fake API",
    close() {},
  });
  const { targets, errors } = parseTargets([{
    name: "api-token",
    namespaceSelector: "ktr.appuio.ch/inject=true",
    data: {
      token: "{{ .token }}",
      authorization: "Bearer {{ .token }}",
      "expires-at": "{{ .expiresAt }}",
    },
  }], "the bench");
  if (errors.length > 0) throw errors[0];
  let fetched = 0;
  const source: TokenSource = {
    fetchToken(): Promise<Token> {
      fetched++;
      const now = Date.now();
      // A JWT-sized value, fresh every cycle, living 3 s: a cycle every 2 s at renew.percent 67.
      const value = `eyJ${crypto.randomUUID().repeat(24)}`;
      return Promise.resolve({
        value,
        obtainedAt: now,
        lifetimeSeconds: 3,
        expiresAt: now + 3_000,
        lifetimeSource: "expires_in",
      });
    },
  };
  const cycles: number[] = [];
  const writes: number[] = [];
  let started = 0;
  let writesBefore = 0;
  const done = Promise.withResolvers<void>();
  const controller = new AbortController();
  const keeper: TargetKeeper = new TargetKeeper({
    client,
    source: {
      fetchToken(signal) {
        started = performance.now();
        writesBefore = keeper.stats.writes;
        return source.fetchToken(signal);
      },
    },
    targets,
    schedule: { intervalMs: 500_000, renewFraction: 0.67 },
    watch: true,
    observer: {
      onSuccess() {
        queueMicrotask(async () => {
          await keeper.idle();
          cycles.push(performance.now() - started);
          writes.push(keeper.stats.writes - writesBefore);
          if (cycles.length >= 4) done.resolve();
        });
      },
    },
  });
  const running = keeper.run(controller.signal);
  await done.promise;
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 200));
  const { rss: rssBytes, heapUsed } = Deno.memoryUsage();

  controller.abort();
  await running;
  const steady = cycles.slice(1).sort((a, b) => a - b);
  if (fetched < 4) throw new Error("fewer cycles than expected");
  return {
    secrets,
    rssBytes,
    heapUsedBytes: heapUsed,
    cycleMs: Math.round(steady[Math.floor(steady.length / 2)] * 10) / 10,
    writesPerCycle: writes.at(-1) ?? 0,
  };
}

/**
 * Runs every size in a process of its own.
 *
 * @param sizes Secret counts.
 * @returns One figure per size.
 */
export async function measureTargets(
  sizes: number[] = [1, 100, 1000],
  v8Flags = "--lite-mode",
): Promise<TargetsFigure[]> {
  const figures: TargetsFigure[] = [];
  for (const size of sizes) {
    // The fake API runs here, so the child's memory is the refresher's alone.
    const api = fakeApi(size);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        `--v8-flags=--expose-gc${v8Flags === "" ? "" : `,${v8Flags}`}`,
        new URL(import.meta.url).pathname,
        `--child=${size}`,
        `--api=${api.url}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await api.close();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      throw new Error(`bench child ${size} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    figures.push(JSON.parse(text.split("\n").at(-1)!));
  }
  return figures;
}

if (import.meta.main) {
  const childArg = Deno.args.find((a) => a.startsWith("--child="));
  if (childArg !== undefined) {
    const api = Deno.args.find((a) => a.startsWith("--api="))!.slice(6);
    console.log(JSON.stringify(await child(Number(childArg.slice(8)), api)));
  } else {
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    const all: Record<string, TargetsFigure[]> = {};
    // The compiled binary runs with --lite-mode (deno task compile); `deno run` without it.
    for (const [label, flags] of [["binary (--lite-mode)", "--lite-mode"], ["deno run", ""]]) {
      const figures = await measureTargets([1, 100, 1000], flags);
      all[label] = figures;
      if (Deno.args.includes("--json")) continue;
      console.log(`${label}\nsecrets  rss MiB  heap MiB  one cycle ms  writes/cycle`);
      for (const f of figures) {
        console.log(
          `${String(f.secrets).padStart(7)}  ${mib(f.rssBytes).padStart(7)}  ${
            mib(f.heapUsedBytes).padStart(8)
          }  ${String(f.cycleMs).padStart(12)}  ${String(f.writesPerCycle).padStart(12)}`,
        );
      }
      console.log(
        `rss(1000) - rss(1): ${
          mib(figures.at(-1)!.rssBytes - figures[0].rssBytes)
        } MiB (target <= 25)\n`,
      );
    }
    if (Deno.args.includes("--json")) console.log(JSON.stringify(all));
  }
}
