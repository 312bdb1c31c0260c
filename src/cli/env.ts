// nndet env (nndet_env): versions, CPU features and threads, CUDA devices (or why none), det_* settings.
import { defineCommand } from "citty";
import { detData, detModels, detNumThreads, detVerbose } from "../config/env";
import { buildInfo, cpuInfo, cudaReport, loadedLibraryPath } from "../native";
import pkg from "../../package.json" with { type: "json" };

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export function collectEnv() {
  const build = buildInfo();
  const cpu = cpuInfo();
  const cuda = cudaReport();
  return {
    nndet: pkg.version,
    bun: Bun.version,
    core: { version: build.version, abi: build.abi, target: build.target, library: loadedLibraryPath() },
    platform: `${process.platform}-${process.arch}`,
    cpu: { level: cpu.level, features: cpu.features, threads: cpu.threads },
    cuda: {
      built: cuda.built,
      runtime: cuda.runtimeVersion ?? null,
      driver: cuda.driverVersion ?? null,
      devices: cuda.devices,
      reason: cuda.reason ?? null,
    },
    settings: {
      det_data: detData(false),
      det_models: detModels(false),
      det_num_threads: detNumThreads(),
      det_verbose: detVerbose(),
    },
  };
}

export default defineCommand({
  meta: { name: "env", description: "Show versions, CPU features, CUDA devices and det_* settings" },
  args: { json: { type: "boolean", description: "Print one JSON object" } },
  run({ args }) {
    const e = collectEnv();
    if (args.json) {
      console.log(JSON.stringify(e, null, 2));
      return 0;
    }
    const set = (s: { value: string; fromEnv: boolean }) => `${s.value}${s.fromEnv ? "" : "  (default; not set)"}`;
    const lines = [
      `nndet ${e.nndet}  (bun ${e.bun}, core ${e.core.version}, ABI ${e.core.abi}, ${e.core.target})`,
      `library         ${e.core.library}`,
      `cpu             ${e.cpu.level} kernels, ${e.cpu.threads} threads; features: ${e.cpu.features.join(" ") || "none"}`,
      `cuda build      ${e.cuda.built ? "yes" : "no"}${e.cuda.runtime ? ` (runtime ${e.cuda.runtime}, driver ${e.cuda.driver})` : ""}`,
    ];
    if (e.cuda.devices.length === 0) lines.push(`cuda devices    none: ${e.cuda.reason}`);
    for (const d of e.cuda.devices) {
      lines.push(`cuda device ${d.index}   ${d.name}, ${gib(d.totalMemory)}, compute ${d.computeCapability}, ${d.multiprocessors} SMs`);
    }
    lines.push(
      `det_data        ${set(e.settings.det_data)}`,
      `det_models      ${set(e.settings.det_models)}`,
      `det_num_threads ${set(e.settings.det_num_threads)}`,
      `det_verbose     ${e.settings.det_verbose ? 1 : 0}`,
    );
    console.log(lines.join("\n"));
    return 0;
  },
});
