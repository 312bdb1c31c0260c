// nndet prep end to end on a small generated task: outputs and plan, the data check stopping prep before
// any output, resuming after a kill (simulated deterministically, and a real SIGKILL of the CLI) giving
// byte-identical outputs, and nndet unpack's verification.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { generateExample } from "../../src/data/example";
import { prepTask } from "../../src/data/prep-task";
import { readNpy } from "../../src/io/npy";
import { resolveTask } from "../../src/io/task";
import { verifyUnpacked } from "../../src/cli/unpack";

const root = mkdtempSync(join(tmpdir(), "nndet-prep-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const main = join(import.meta.dir, "..", "..", "src", "main.ts");
const fast = { planner: { anchorSearch: { budget: 300, runs: 1 } } };

/** sha256 of every output file (relative path -> hash), excluding the raw data. */
function outputs(taskDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(taskDir, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  for (const d of ["raw_cropped", "preprocessed"]) if (existsSync(join(taskDir, d))) walk(join(taskDir, d));
  return out;
}

async function makeTask(name: string, size: number, train: number): Promise<string> {
  const data = join(root, name);
  await generateExample({ root: data, imageSize: size, numTrain: train, numTest: 2, objectsPerCase: 2 });
  return data;
}

describe("nndet prep", () => {
  let reference: Record<string, string> = {};
  let data = "";

  test("a small task: every output, a valid plan, boxes and seg agree", async () => {
    data = await makeTask("a", 40, 4);
    const t = resolveTask("000", data);
    const s = await prepTask(t, fast);
    expect(s.cases).toBe(4);
    const p = s.plans[0]!;
    expect(p.data_identifier).toBe("D3V001_3d");
    expect(p.target_spacing).toEqual([1, 1, 1]);
    expect(p.patch_size).toEqual([40, 40, 40]);
    reference = outputs(t.dir);
    for (const f of ["preprocessed/properties/fingerprint.json", "preprocessed/D3V001_3d.json", "preprocessed/plan.md", "preprocessed/analysis/D3V001_3d/object_sizes.svg", "raw_cropped/imagesTr/case_0.npy", "preprocessed/labelsTs/case_4_boxes_gt.json"]) {
      expect(reference[f]).toBeDefined();
    }
    const img = readNpy<Float32Array>(join(t.dir, "preprocessed/D3V001_3d/imagesTr/case_1.npy"));
    const seg = readNpy<Int32Array>(join(t.dir, "preprocessed/D3V001_3d/imagesTr/case_1_seg.npy"));
    expect(img.shape).toEqual([1, 40, 40, 40]);
    expect(seg.shape).toEqual([1, 40, 40, 40]);
    // non-CT z-score over the whole image: mean 0, std 1
    let m = 0;
    for (const x of img.data) m += x;
    expect(Math.abs(m / img.data.length)).toBeLessThan(1e-4);
    const boxes = JSON.parse(readFileSync(join(t.dir, "preprocessed/D3V001_3d/imagesTr/case_1_boxes.json"), "utf8"));
    expect(boxes.instances).toEqual([1, 2]);
    expect(verifyUnpacked(join(t.dir, "preprocessed/D3V001_3d/imagesTr"))).toEqual({ cases: 4, problems: [] });
  });

  test("a simulated kill (lost markers, partial and temp files) resumes to identical outputs", async () => {
    const t = resolveTask("000", data);
    const pre = join(t.dir, "preprocessed");
    unlinkSync(join(pre, "D3V001_3d/imagesTr/case_2.json"));
    unlinkSync(join(pre, "D3V001_3d/imagesTr/case_3.json"));
    writeFileSync(join(pre, "D3V001_3d/imagesTr/case_3.npy"), "truncated");
    writeFileSync(join(pre, "D3V001_3d/imagesTr/case_3_seg.npy.tmp-999"), "partial");
    unlinkSync(join(t.dir, "raw_cropped/imagesTr/case_1.json"));
    writeFileSync(join(t.dir, "raw_cropped/imagesTr/case_1.npy"), "x");
    unlinkSync(join(pre, "properties/fingerprint.json"));
    await prepTask(t, fast);
    expect(outputs(t.dir)).toEqual(reference);
  });

  test("a real SIGKILL of the CLI midway, then a rerun, equals an uninterrupted run", async () => {
    const d = await makeTask("b", 64, 6);
    const copy = join(root, "b-copy");
    cpSync(d, copy, { recursive: true });
    const env = { ...process.env, det_data: d, det_verbose: "1" };
    const args = ["bun", "run", main, "prep", "000", "-o", "planner.anchor_budget=300"];
    const proc = Bun.spawn(args, { env, stdout: "pipe", stderr: "pipe" });
    const marker = join(d, "Task000D3_Example/raw_cropped/imagesTr/case_1.json");
    for (let i = 0; i < 3000 && !existsSync(marker) && proc.exitCode === null; i++) await Bun.sleep(5);
    proc.kill(9);
    await proc.exited;
    // it was killed before finishing: the last plan-stage outputs are missing
    expect(proc.signalCode).toBe("SIGKILL");
    expect(existsSync(join(d, "Task000D3_Example/preprocessed/D3V001_3d/imagesTr/case_5.json"))).toBe(false);
    const again = Bun.spawnSync(args, { env });
    expect(again.exitCode).toBe(0);
    const clean = Bun.spawnSync(args, { env: { ...env, det_data: copy } });
    expect(clean.exitCode).toBe(0);
    expect(outputs(join(d, "Task000D3_Example"))).toEqual(outputs(join(copy, "Task000D3_Example")));
  });

  test("a failing case on a Worker fails prep with its message (--no_check)", async () => {
    const d = await makeTask("e", 24, 3);
    const t = resolveTask("000", d);
    const small = await makeTask("f", 16, 1);
    cpSync(join(resolveTask("000", small).labelsTr, "case_0.nii.gz"), join(t.labelsTr, "case_1.nii.gz"));
    await expect(prepTask(t, { ...fast, noCheck: true, np: 2 })).rejects.toThrow("label shape");
  });

  test("corrupt raw data stops prep with the check's messages before any output", async () => {
    const d = await makeTask("c", 24, 2);
    const t = resolveTask("000", d);
    writeFileSync(join(t.labelsTr, "case_0.json"), JSON.stringify({ instances: { "1": 7 } }));
    const r = Bun.spawnSync(["bun", "run", main, "prep", "000"], { env: { ...process.env, det_data: d } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain("case_0.json");
    expect(existsSync(join(t.dir, "preprocessed"))).toBe(false);
    expect(existsSync(join(t.dir, "raw_cropped"))).toBe(false);
  });
});
