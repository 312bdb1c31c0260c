// The compiled binary (dist/nndet, built by scripts/build.sh; dist/stub/nndet is the CPU-only variant):
// copied away from the repo, run from another directory without Bun's node_modules, as `nndet env` and
// through an `nndet_env` link; usage errors exit 2.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
// dist/nndet embeds build/lib/libnndet_core.so: it has CUDA when that library has the CUDA launchers.
const devLib = join(root, "build/lib/libnndet_core.so");
const builtWithCuda = existsSync(devLib) && Bun.spawnSync(["nm", devLib]).stdout.toString().includes("ndk_saxpy");
const variants = [
  { name: "default", dist: join(root, "dist/nndet"), cuda: builtWithCuda },
  { name: "stub", dist: join(root, "dist/stub/nndet"), cuda: false },
];

for (const v of variants) {
  describe(`compiled binary (${v.name})`, () => {
    let dir = "";
    let exe = "";
    beforeAll(() => {
      if (!existsSync(v.dist)) throw new Error(`${v.dist} is missing: run scripts/build.sh first (scripts/test.sh does)`);
      dir = mkdtempSync(join(tmpdir(), "nndet-bin-"));
      exe = join(dir, "nndet");
      copyFileSync(v.dist, exe);
      Bun.spawnSync(["chmod", "+x", exe]);
      symlinkSync("nndet", join(dir, "nndet_env"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    // A minimal environment: no Bun on PATH, no NDET_LIB, cwd outside the repo.
    const run = (cmd: string[], extra: Record<string, string> = {}) =>
      Bun.spawnSync(cmd, { cwd: tmpdir(), env: { PATH: "/usr/bin:/bin", HOME: tmpdir(), ...extra } });

    test("env --json reports the embedded library", () => {
      const r = run([exe, "env", "--json"], { det_data: "/data/x", det_num_threads: "2" });
      expect(r.exitCode).toBe(0);
      const e = JSON.parse(r.stdout.toString());
      expect(e.core.library.startsWith("/$bunfs/")).toBe(true);
      expect(e.cpu.threads).toBe(2);
      expect(e.settings.det_data).toEqual({ value: "/data/x", fromEnv: true });
      expect(e.cuda.built).toBe(v.cuda);
      if (e.cuda.devices.length === 0) expect(typeof e.cuda.reason).toBe("string");
    });

    test("the nndet_env link runs the env verb", () => {
      const r = run([join(dir, "nndet_env")]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.toString()).toContain("det_data");
      expect(r.stdout.toString()).toContain("cuda build      " + (v.cuda ? "yes" : "no"));
    });

    test("unknown verbs and flags exit 2 with usage; --help exits 0", () => {
      const a = run([exe, "nosuchverb"]);
      expect(a.exitCode).toBe(2);
      expect(a.stderr.toString()).toContain("unknown verb 'nosuchverb'");
      const b = run([exe, "env", "--bogus"]);
      expect(b.exitCode).toBe(2);
      expect(b.stderr.toString()).toContain("unknown option --bogus");
      expect(run([exe, "--help"]).exitCode).toBe(0);
      expect(run([exe]).exitCode).toBe(2);
    });
  });
}
