/**
 * The `targets` list of the `--config` file: which Secrets to write and what goes into them.
 * Parsed from the YAML tree (every scalar a string, as the file loader keeps them) into frozen
 * target specs; every problem names the target's index and field.
 *
 * @module
 */
import { ConfigError } from "../config/errors.ts";
import { isMapping } from "../config/file.ts";
import { closestMatch } from "../config/suggest.ts";
import { describeType } from "../config/values.ts";
import { checkGlob, compileGlob, parseLabelSelector, type Requirement } from "./select.ts";
import { compileTemplate, type Template, TemplateError } from "./template.ts";

/** The Secret types a target may have. */
export const TARGET_TYPES = ["Opaque", "kubernetes.io/dockerconfigjson"] as const;

/** A Secret type a target may have. */
export type TargetType = typeof TARGET_TYPES[number];

/** The data key of a `kubernetes.io/dockerconfigjson` Secret. */
export const DOCKERCONFIGJSON_KEY = ".dockerconfigjson";

/** Which namespaces a target selects. */
export type Selection =
  | { readonly kind: "namespace"; readonly namespace: string }
  | { readonly kind: "namespaces"; readonly patterns: readonly string[] }
  | { readonly kind: "selector"; readonly selector: string; readonly requirements: Requirement[] };

/** One data key and its template. */
export interface DataTemplate {
  /** The key in the Secret's data. */
  readonly key: string;
  /** Its template. */
  readonly template: Template;
}

/** One validated target. */
export interface TargetSpec {
  /** Position in the `targets` list, from 0 (for messages). */
  readonly index: number;
  /** Name of the Secret (a DNS-1123 subdomain). */
  readonly name: string;
  /** Which namespaces. */
  readonly selection: Selection;
  /** Globs of namespaces never written (`excludeNamespaces`). */
  readonly excludeNamespaces: readonly string[];
  /** Delete Secrets this target created in namespaces that stop matching (`prune`). */
  readonly prune: boolean;
  /** The Secret's type. */
  readonly type: TargetType;
  /** Labels the tool sets (besides its managed label). */
  readonly labels: Readonly<Record<string, string>>;
  /** Annotations the tool sets (besides its state annotations). */
  readonly annotations: Readonly<Record<string, string>>;
  /** Data keys and their templates (for dockerconfigjson: keys besides `.dockerconfigjson`). */
  readonly data: readonly DataTemplate[];
  /** The `.dockerconfigjson` registry entry, for that type. */
  readonly dockerconfig?: { readonly registry: string; readonly username: string };
  /**
   * The value of the `ktr.appuio.ch/target` annotation on Secrets this target created: its name
   * and its selection as written, so a changed selection never prunes the old one's Secrets.
   */
  readonly id: string;
  /** Whether a namespace name is selected by name or glob, before labels and exclusions. */
  readonly matchesName: (namespace: string) => boolean;
  /** Whether a namespace is excluded. */
  readonly excluded: (namespace: string) => boolean;
}

const FIELDS = [
  "name",
  "namespace",
  "namespaces",
  "namespaceSelector",
  "excludeNamespaces",
  "prune",
  "type",
  "labels",
  "annotations",
  "data",
  "dockerconfig",
] as const;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** The default data of an Opaque target. */
const DEFAULT_DATA = { token: "{{ .token }}" };

/**
 * Reads the `targets` list of the config file.
 *
 * @param raw The parsed YAML value of `targets` (scalars as strings).
 * @param where The file, for messages (`config file "ktr.yaml"`).
 * @returns The targets, and every problem found (empty when all is well).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTargets } from "./config.ts";
 * const { targets, errors } = parseTargets([{ name: "api-token", namespace: "team-a" }], "the config file");
 * assert.equal(errors.length, 0);
 * assert.equal(targets[0].data[0].key, "token");
 * ```
 */
export function parseTargets(
  raw: unknown,
  where: string,
): { targets: TargetSpec[]; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const targets: TargetSpec[] = [];
  if (!Array.isArray(raw) || raw.length === 0) {
    errors.push(
      new ConfigError(
        `Invalid value for targets in ${where}: expected a non-empty list of targets (each with name and one of namespace, namespaces, namespaceSelector), got ${
          describeType(raw)
        }`,
        { code: "CONFIG_INVALID", key: "targets", source: "file" },
      ),
    );
    return { targets, errors };
  }
  raw.forEach((item, index) => {
    const target = parseTarget(item, index, where, errors);
    if (target !== undefined) targets.push(Object.freeze(target));
  });
  return { targets, errors };
}

function parseTarget(
  item: unknown,
  index: number,
  where: string,
  errors: ConfigError[],
): TargetSpec | undefined {
  const at = (field?: string) => `targets[${index}]${field === undefined ? "" : `.${field}`}`;
  const before = errors.length;
  const fail = (
    field: string | undefined,
    problem: string,
    code: "CONFIG_INVALID" | "CONFIG_MISSING" | "CONFIG_UNKNOWN_KEY" | "CONFIG_CONFLICT" =
      "CONFIG_INVALID",
  ) =>
    errors.push(
      new ConfigError(
        `${code === "CONFIG_MISSING" ? "Missing" : "Invalid"} ${at(field)} in ${where}: ${problem}`,
        {
          code,
          key: at(field),
          source: "file",
        },
      ),
    );
  if (!isMapping(item)) {
    fail(
      undefined,
      `expected a mapping with name and namespace, namespaces or namespaceSelector, got ${
        describeType(item)
      }`,
    );
    return undefined;
  }
  for (const field of Object.keys(item)) {
    if (!(FIELDS as readonly string[]).includes(field)) {
      const suggestion = closestMatch(field, FIELDS);
      errors.push(
        new ConfigError(
          `Unknown key ${at(field)} in ${where}: ${
            suggestion === undefined
              ? `a target has ${FIELDS.join(", ")}`
              : `did you mean "${suggestion}"?`
          }`,
          { code: "CONFIG_UNKNOWN_KEY", key: at(field), source: "file" },
        ),
      );
    }
  }
  const str = (field: string): string | undefined => {
    const value = item[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string") {
      fail(field, `expected a string, got ${describeType(value)}`);
      return undefined;
    }
    return value;
  };
  const list = (field: string): string[] | undefined => {
    const value = item[field];
    if (value === undefined || value === null) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
      fail(field, `expected a list of strings, got ${describeType(value)}`);
      return undefined;
    }
    return value as string[];
  };
  const map = (field: string): Record<string, string> | undefined => {
    const value = item[field];
    if (value === undefined || value === null) return undefined;
    if (!isMapping(value) || Object.values(value).some((v) => typeof v !== "string")) {
      fail(field, `expected a mapping of strings, got ${describeType(value)}`);
      return undefined;
    }
    return value as Record<string, string>;
  };

  const name = str("name");
  if (name === undefined) {
    if (item.name === undefined || item.name === null) {
      fail(
        "name",
        "every target needs the name of its Secret (a DNS-1123 subdomain, like api-token)",
        "CONFIG_MISSING",
      );
    }
  } else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    fail(
      "name",
      `expected a Secret name (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), got ${
        JSON.stringify(name)
      }`,
    );
  }

  const given = (["namespace", "namespaces", "namespaceSelector"] as const).filter((f) =>
    item[f] !== undefined && item[f] !== null
  );
  let selection: Selection | undefined;
  if (given.length !== 1) {
    fail(
      given.length === 0 ? undefined : given[1],
      given.length === 0
        ? "set exactly one of namespace, namespaces (names or globs) and namespaceSelector (a label selector)"
        : `set exactly one of namespace, namespaces and namespaceSelector, not ${
          given.join(" and ")
        }`,
      given.length === 0 ? "CONFIG_MISSING" : "CONFIG_CONFLICT",
    );
  } else if (given[0] === "namespace") {
    const namespace = str("namespace");
    if (namespace !== undefined) {
      if (namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
        fail(
          "namespace",
          `expected a namespace name (a DNS-1123 label), got ${
            JSON.stringify(namespace)
          }; for globs use namespaces`,
        );
      } else selection = { kind: "namespace", namespace };
    }
  } else if (given[0] === "namespaces") {
    const patterns = list("namespaces");
    if (patterns !== undefined) {
      const bad = patterns.find((p) => checkGlob(p) !== undefined);
      if (patterns.length === 0) fail("namespaces", "expected at least one namespace name or glob");
      else if (bad !== undefined) {
        fail("namespaces", `${JSON.stringify(bad)} is not ${checkGlob(bad)}`);
      } else selection = { kind: "namespaces", patterns };
    }
  } else {
    const selector = str("namespaceSelector");
    if (selector !== undefined) {
      try {
        selection = { kind: "selector", selector, requirements: parseLabelSelector(selector) };
      } catch (err) {
        fail(
          "namespaceSelector",
          `expected a label selector like "ktr.appuio.ch/inject=true" (kubectl -l syntax): ${
            (err as Error).message
          }`,
        );
      }
    }
  }

  const excludeNamespaces = list("excludeNamespaces") ?? [];
  const badExclude = excludeNamespaces.find((p) => checkGlob(p) !== undefined);
  if (badExclude !== undefined) {
    fail("excludeNamespaces", `${JSON.stringify(badExclude)} is not ${checkGlob(badExclude)}`);
  }
  if (item.excludeNamespaces != null && selection?.kind === "namespace") {
    fail(
      "excludeNamespaces",
      "only with namespaces or namespaceSelector; namespace names one namespace",
      "CONFIG_CONFLICT",
    );
  }

  let prune = false;
  const pruneText = str("prune");
  if (pruneText !== undefined) {
    if (pruneText === "true") prune = true;
    else if (pruneText !== "false") {
      fail("prune", `expected true or false, got ${JSON.stringify(pruneText)}`);
    }
  }
  if (prune && selection?.kind === "namespace") {
    fail(
      "prune",
      "only with namespaces or namespaceSelector: a single namespace never stops matching",
      "CONFIG_CONFLICT",
    );
  }

  let type: TargetType = "Opaque";
  const typeText = str("type");
  if (typeText !== undefined) {
    if ((TARGET_TYPES as readonly string[]).includes(typeText)) type = typeText as TargetType;
    else {fail(
        "type",
        `expected Opaque or kubernetes.io/dockerconfigjson, got ${JSON.stringify(typeText)}`,
      );}
  }

  const labels = map("labels") ?? {};
  for (const [key, value] of Object.entries(labels)) {
    if (!QUALIFIED_NAME.test(key)) fail("labels", `${JSON.stringify(key)} is not a label key`);
    else if (!LABEL_VALUE.test(value)) {
      fail(
        `labels.${key}`,
        `${JSON.stringify(value)} is not a label value (at most 63 letters, digits, '-', '_', '.')`,
      );
    } else if (key.startsWith("ktr.appuio.ch/")) {
      fail(`labels.${key}`, "the ktr.appuio.ch/ prefix belongs to the tool");
    }
  }
  const annotations = map("annotations") ?? {};
  for (const key of Object.keys(annotations)) {
    if (!QUALIFIED_NAME.test(key)) {
      fail("annotations", `${JSON.stringify(key)} is not an annotation key`);
    } else if (key.startsWith("ktr.appuio.ch/")) {
      fail(`annotations.${key}`, "the ktr.appuio.ch/ prefix belongs to the tool");
    }
  }

  let dockerconfig: TargetSpec["dockerconfig"];
  if (item.dockerconfig !== undefined && item.dockerconfig !== null) {
    const value = item.dockerconfig;
    if (!isMapping(value)) {
      fail(
        "dockerconfig",
        `expected a mapping with registry and username, got ${describeType(value)}`,
      );
    } else {
      for (const field of Object.keys(value)) {
        if (field !== "registry" && field !== "username") {
          fail(
            `dockerconfig.${field}`,
            "unknown; dockerconfig has registry and username",
            "CONFIG_UNKNOWN_KEY",
          );
        }
      }
      const { registry, username } = value;
      if (typeof registry !== "string" || registry === "" || /\s/.test(registry)) {
        fail(
          "dockerconfig.registry",
          "expected the registry host, like registry.example.com",
          registry === undefined ? "CONFIG_MISSING" : "CONFIG_INVALID",
        );
      }
      if (typeof username !== "string" || username === "" || username.includes(":")) {
        fail(
          "dockerconfig.username",
          "expected the user name the registry wants with a token (without ':'), like oauth2accesstoken",
          username === undefined ? "CONFIG_MISSING" : "CONFIG_INVALID",
        );
      }
      if (typeof registry === "string" && typeof username === "string") {
        dockerconfig = Object.freeze({ registry, username });
      }
    }
    if (type !== "kubernetes.io/dockerconfigjson") {
      fail("dockerconfig", "needs type: kubernetes.io/dockerconfigjson", "CONFIG_CONFLICT");
    }
  } else if (type === "kubernetes.io/dockerconfigjson") {
    fail(
      "dockerconfig",
      "type kubernetes.io/dockerconfigjson needs dockerconfig: { registry: ..., username: ... }",
      "CONFIG_MISSING",
    );
  }

  const dataRaw = map("data") ?? (type === "Opaque" && item.data == null ? DEFAULT_DATA : {});
  const data: DataTemplate[] = [];
  for (const [key, source] of Object.entries(dataRaw)) {
    if (key.length > 253 || !DATA_KEY.test(key) || key === "." || key.startsWith("..")) {
      fail(
        "data",
        `${JSON.stringify(key)} is not a Secret data key (letters, digits, '-', '_', '.')`,
      );
      continue;
    }
    if (key === DOCKERCONFIGJSON_KEY) {
      fail(`data.${key}`, "is built from dockerconfig; leave it out of data", "CONFIG_CONFLICT");
      continue;
    }
    try {
      data.push({ key, template: compileTemplate(source) });
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      fail(`data.${key}`, err.message);
    }
  }
  if (type === "Opaque" && Object.keys(dataRaw).length === 0 && item.data != null) {
    fail("data", 'expected at least one key, like token: "{{ .token }}"');
  }

  if (errors.length > before || name === undefined || selection === undefined) return undefined;
  const include = selection.kind === "namespaces" ? selection.patterns.map(compileGlob) : [];
  const exclude = excludeNamespaces.map(compileGlob);
  const id = `${name}:${
    selection.kind === "namespace"
      ? `namespace=${selection.namespace}`
      : selection.kind === "namespaces"
      ? `namespaces=${selection.patterns.join(",")}`
      : `namespaceSelector=${selection.selector}`
  }`;
  return {
    index,
    name,
    selection,
    excludeNamespaces,
    prune,
    type,
    labels: Object.freeze({ ...labels }),
    annotations: Object.freeze({ ...annotations }),
    data,
    ...(dockerconfig === undefined ? {} : { dockerconfig }),
    id: id.length > 1000 ? id.slice(0, 1000) : id,
    matchesName: selection.kind === "namespace"
      ? (ns) => ns === selection.namespace
      : selection.kind === "namespaces"
      ? (ns) => include.some((m) => m(ns))
      : () => true,
    excluded: (ns) => exclude.some((m) => m(ns)),
  };
}

/** The data keys a target writes. */
export function keysOf(target: TargetSpec): string[] {
  const keys = target.data.map((d) => d.key);
  if (target.type === "kubernetes.io/dockerconfigjson") keys.push(DOCKERCONFIGJSON_KEY);
  return keys;
}

/**
 * Targets that would write the same Secret in a namespace both can name: a config error for
 * fixed namespaces (found at start); selectors and globs are checked again at run time.
 *
 * @param targets The targets.
 * @returns One error per clash of two targets on the same namespace and name.
 */
export function staticConflicts(targets: readonly TargetSpec[], where: string): ConfigError[] {
  const errors: ConfigError[] = [];
  for (let i = 0; i < targets.length; i++) {
    for (let j = i + 1; j < targets.length; j++) {
      const a = targets[i];
      const b = targets[j];
      if (a.name !== b.name) continue;
      const fixedA = a.selection.kind === "namespace" ? a.selection.namespace : undefined;
      const fixedB = b.selection.kind === "namespace" ? b.selection.namespace : undefined;
      const clash = fixedA !== undefined && fixedB !== undefined
        ? fixedA === fixedB
        : fixedA !== undefined && b.selection.kind === "namespaces"
        ? b.matchesName(fixedA) && !b.excluded(fixedA)
        : fixedB !== undefined && a.selection.kind === "namespaces"
        ? a.matchesName(fixedB) && !a.excluded(fixedB)
        : a.selection.kind === "namespaces" && b.selection.kind === "namespaces" &&
          a.selection.patterns.some((p) =>
            !/[*?]/.test(p) && b.matchesName(p) && !b.excluded(p) && !a.excluded(p)
          );
      if (!clash) continue;
      errors.push(
        new ConfigError(
          `Invalid targets[${j}] in ${where}: it writes Secret "${b.name}" in a namespace targets[${i}] also writes; one Secret is written by one target (its apply owns all the tool's keys of that Secret), so give one of them another name or exclude the namespace`,
          { code: "CONFIG_CONFLICT", key: `targets[${j}]`, source: "file" },
        ),
      );
    }
  }
  return errors;
}
