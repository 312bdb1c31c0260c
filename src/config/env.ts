// nnDetection's environment variables, read in one place, with our defaults where nnDetection has none:
//   det_data        root of task folders           (default ./nndet_data, with a one-line notice)
//   det_models      root of trained models          (default ./nndet_models, with a one-line notice)
//   det_num_threads threads of the native pool       (default: all cores; read by the core itself)
//   det_verbose     progress output, 0 disables it    (default 1)
import { availableParallelism } from "node:os";
import { resolve } from "node:path";

export interface EnvSetting {
  value: string;
  fromEnv: boolean;
}

const noticed = new Set<string>();

function pathSetting(name: string, fallback: string, notice: boolean): EnvSetting {
  const v = process.env[name];
  if (v && v.trim() !== "") return { value: resolve(v), fromEnv: true };
  const value = resolve(fallback);
  if (notice && !noticed.has(name)) {
    noticed.add(name);
    console.error(`nndet: ${name} is not set; using ${value}`);
  }
  return { value, fromEnv: false };
}

/** The task root (`det_data`). `notice` prints a one-line notice when the default is used. */
export function detData(notice = true): EnvSetting {
  return pathSetting("det_data", "nndet_data", notice);
}

/** The models root (`det_models`). */
export function detModels(notice = true): EnvSetting {
  return pathSetting("det_models", "nndet_models", notice);
}

export function detNumThreads(): EnvSetting {
  const v = Number.parseInt(process.env.det_num_threads ?? "", 10);
  if (Number.isFinite(v) && v > 0) return { value: String(v), fromEnv: true };
  return { value: String(availableParallelism()), fromEnv: false };
}

/** Progress output is on unless det_verbose is 0 (or false/off). */
export function detVerbose(): boolean {
  const v = (process.env.det_verbose ?? "").trim().toLowerCase();
  return !(v === "0" || v === "false" || v === "off");
}

/** ND_DEBUG=0..3: stage timings (1), per-op timings (2), every FFI call (3). */
export function debugLevel(): number {
  const v = Number.parseInt(process.env.ND_DEBUG ?? "0", 10);
  return Number.isFinite(v) ? v : 0;
}
