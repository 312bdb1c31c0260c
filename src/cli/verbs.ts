// The verbs of `nndet <verb>` (and of `nndet_<verb>` links), each loaded only when it runs.
// Only real verbs are listed here; add one line per verb, with its module in src/cli/<verb>.ts.
import type { CommandDef } from "citty";

type Lazy = () => Promise<CommandDef>;

// biome-ignore lint: heterogeneous arg definitions
const load = (m: Promise<{ default: CommandDef<any> }>) => m.then((x) => x.default as CommandDef);

export const verbs: Record<string, Lazy> = {
  env: () => load(import("./env")),
  check: () => load(import("./check")),
  example: () => load(import("./example")),
  prep: () => load(import("./prep")),
  unpack: () => load(import("./unpack")),
};
