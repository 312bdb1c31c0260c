// nndet unpack PATH [N] (nnDetection's nndet_unpack, kept for compatibility): nnDetection stores .npz and
// must unpack them to .npy before training; nndet prep already writes .npy. This verifies every
// {case}.npy in PATH against its {case}_seg.npy (readable headers, full data, same spatial shape, the
// expected dtypes) and says so. N (processes) is accepted and ignored.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { readNpyHeader } from "../io/npy";
import { statSync } from "node:fs";

/** Problems found in a preprocessed images folder, and the number of cases verified. */
export function verifyUnpacked(dir: string): { cases: number; problems: string[] } {
  const files = readdirSync(dir);
  const problems: string[] = [];
  const cases = files.filter((f) => f.endsWith(".npy") && !f.endsWith("_seg.npy") && !f.endsWith("_fg.npy")).map((f) => f.slice(0, -4));
  if (files.some((f) => f.endsWith(".npz"))) problems.push(`${dir}: holds .npz files (nnDetection's format); run nndet prep to write .npy`);
  const size = (f: string) => statSync(join(dir, f)).size;
  for (const c of cases) {
    try {
      const d = readNpyHeader(join(dir, `${c}.npy`));
      const s = readNpyHeader(join(dir, `${c}_seg.npy`));
      if (d.dtype !== "f4") problems.push(`${c}.npy: dtype ${d.dtype}, expected float32`);
      if (s.dtype !== "i4") problems.push(`${c}_seg.npy: dtype ${s.dtype}, expected int32`);
      if (d.shape.length !== 4 || s.shape.length !== 4 || s.shape[0] !== 1 || d.shape.slice(1).join() !== s.shape.slice(1).join()) {
        problems.push(`${c}: data shape ${JSON.stringify(d.shape)} and seg shape ${JSON.stringify(s.shape)} disagree`);
      }
      for (const [f, h] of [[`${c}.npy`, d], [`${c}_seg.npy`, s]] as const) {
        const need = h.dataOffset + h.shape.reduce((x, y) => x * y, 1) * 4;
        if (size(f) < need) problems.push(`${f}: truncated (${size(f)} of ${need} bytes)`);
      }
    } catch (e) {
      problems.push(`${c}: ${(e as Error).message}`);
    }
  }
  return { cases: cases.length, problems };
}

export default defineCommand({
  meta: { name: "unpack", description: "Verify preprocessed arrays (nndet prep already writes unpacked .npy)" },
  args: {
    path: { type: "positional", required: true, description: "A preprocessed images folder, e.g. …/preprocessed/D3V001_3d/imagesTr" },
    num_processes: { type: "positional", required: false, description: "Accepted for compatibility; ignored" },
  },
  run({ args }) {
    const r = verifyUnpacked(String(args.path));
    if (r.problems.length) {
      for (const p of r.problems) console.error(p);
      throw new Error(`${r.problems.length} problem(s) in ${args.path}`);
    }
    console.log(`${args.path}: ${r.cases} cases verified; nndet prep writes unpacked .npy, nothing to unpack`);
    return 0;
  },
});
