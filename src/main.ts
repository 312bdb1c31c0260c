// nndet's entry point: `nndet <verb> [args]`, or `nndet_<verb> [args]` when invoked through a link of that
// name (as nnDetection's commands). The only place that sets the exit code:
//   0 success (or the verb's own code), 1 failure (a native failure prints `op: message`), 2 usage error.
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { basename } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { verbs } from "./cli/verbs";
import { debugLevel } from "./config/env";

export class UsageError extends Error {}

function rootCommand(): CommandDef {
  const subCommands: Record<string, () => Promise<CommandDef>> = {};
  for (const [name, lazy] of Object.entries(verbs)) subCommands[name] = lazy;
  return {
    meta: {
      name: "nndet",
      version: pkg.version,
      description: "nnDetection, self-configuring 3D medical object detection, as one binary",
    },
    subCommands,
  };
}

/** The verb implied by the program name (`nndet_env` -> `env`), if any. */
export function verbFromProgramName(argv0: string): string | null {
  const m = /^nndet_([a-z0-9]+)$/.exec(basename(argv0));
  return m && m[1]! in verbs ? m[1]! : null;
}

function kebab(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replace(/_/g, "-").toLowerCase();
}

/** Rewrite nnDetection-style single-dash long flags (`-np 4`) to `--np 4` when the verb declares them. */
export function normalizeArgs(raw: string[], args: ArgsDef): string[] {
  const names = new Set<string>();
  for (const [name, def] of Object.entries(args)) {
    names.add(name);
    const alias = (def as { alias?: string | string[] }).alias;
    for (const a of alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]) names.add(a);
  }
  return raw.map((a) => (/^-[A-Za-z_]{2,}$/.test(a) && names.has(a.slice(1)) ? `-${a}` : a));
}

/** Refuse flags the verb does not declare (citty itself ignores them). */
export function validateFlags(raw: string[], args: ArgsDef, verb: string): void {
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(args)) {
    if ((def as { type?: string }).type === "positional") continue;
    for (const n of [name, kebab(name)]) {
      known.add(n);
      if ((def as { type?: string }).type === "boolean") known.add(`no-${n}`);
    }
    const alias = (def as { alias?: string | string[] }).alias;
    for (const a of alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]) known.add(a);
  }
  for (const a of raw) {
    if (a === "--") break;
    if (!a.startsWith("-") || /^-\d/.test(a)) continue;
    const name = a.replace(/^--?/, "").split("=")[0]!;
    const short = !a.startsWith("--");
    const flags = short && name.length > 1 && !known.has(name) ? name.split("") : [name];
    for (const f of flags) if (!known.has(f)) throw new UsageError(`unknown option ${a} for nndet ${verb}`);
  }
}

async function usage(cmd: CommandDef, parent?: CommandDef): Promise<string> {
  return await renderUsage(cmd, parent);
}

export async function main(argv: string[], argv0: string): Promise<number> {
  const root = rootCommand();
  const implied = verbFromProgramName(argv0);
  const args = implied ? [implied, ...argv] : argv;
  const verb = args[0];

  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    const text = await usage(root);
    if (verb === undefined) {
      console.error(text);
      return 2;
    }
    console.log(text);
    return 0;
  }
  if (verb === "--version" || verb === "-v") {
    console.log(pkg.version);
    return 0;
  }
  const lazy = verbs[verb];
  if (!lazy) {
    console.error(`nndet: unknown verb '${verb}'\n\n${await usage(root)}`);
    return 2;
  }
  const cmd = await lazy();
  const cmdArgs = ((typeof cmd.args === "function" ? await cmd.args() : cmd.args) ?? {}) as ArgsDef;
  const rest = normalizeArgs(args.slice(1), cmdArgs);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(await usage(cmd, root));
    return 0;
  }
  try {
    validateFlags(rest, cmdArgs, verb);
    const { result } = await runCommand(cmd, { rawArgs: rest });
    return typeof result === "number" ? result : 0;
  } catch (e) {
    const f = describeFailure(e, verb);
    console.error(f.code === 2 ? `${f.message}\n\n${await usage(cmd, root)}` : f.message);
    if (f.code === 1 && debugLevel() >= 1) console.error((e as Error).stack);
    return f.code;
  }
}

/** Exit code and message for an error thrown by a verb: usage errors 2, native failures `op: message` 1. */
export function describeFailure(e: unknown, verb: string): { code: number; message: string } {
  const err = e as Error;
  if (e instanceof UsageError || err?.name === "CLIError") return { code: 2, message: `nndet ${verb}: ${err.message}` };
  if (err?.name === "NativeError") return { code: 1, message: err.message };
  return { code: 1, message: `nndet ${verb}: ${err?.message ?? String(e)}` };
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2), process.argv0);
  process.exit(code);
}
