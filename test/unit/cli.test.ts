// The CLI's own rules: verbs implied by the program name, nnDetection-style flags, unknown flags, and how
// failures map to exit codes and messages.
import { describe, expect, test } from "bun:test";
import { describeFailure, normalizeArgs, UsageError, validateFlags, verbFromProgramName } from "../../src/main";
import { NativeError, Status } from "../../src/native/errors";

describe("program name", () => {
  test("nndet_<verb> links imply the verb", () => {
    expect(verbFromProgramName("/usr/local/bin/nndet_env")).toBe("env");
    expect(verbFromProgramName("nndet_env")).toBe("env");
    expect(verbFromProgramName("/x/nndet")).toBeNull();
    expect(verbFromProgramName("/x/nndet_nosuchverb")).toBeNull();
    expect(verbFromProgramName("/x/bun")).toBeNull();
  });
});

describe("flags", () => {
  const args = {
    task: { type: "positional" as const },
    np: { type: "string" as const, alias: ["num_processes"] },
    full_check: { type: "boolean" as const },
    json: { type: "boolean" as const },
  };

  test("single-dash long flags that a verb declares become double-dash", () => {
    expect(normalizeArgs(["000", "-np", "4", "-x", "-full_check"], args)).toEqual(["000", "--np", "4", "-x", "--full_check"]);
  });

  test("declared flags, their kebab spelling, aliases and --no- forms pass", () => {
    expect(() => validateFlags(["000", "--np", "4", "--full-check", "--no-json", "--num_processes=2"], args, "prep")).not.toThrow();
    expect(() => validateFlags(["--help", "-h", "--", "--anything"], args, "prep")).not.toThrow();
  });

  test("unknown flags are usage errors naming the flag and verb", () => {
    expect(() => validateFlags(["--bogus"], args, "prep")).toThrow("unknown option --bogus for nndet prep");
    expect(() => validateFlags(["-q"], args, "prep")).toThrow(UsageError);
  });

  test("negative numbers are values, not flags", () => {
    expect(() => validateFlags(["--np", "-1"], args, "prep")).not.toThrow();
  });
});

describe("failures", () => {
  test("native failures print op: message and exit 1", () => {
    const f = describeFailure(new NativeError("conv3dFwd", Status.BufferSize, "x has 3 elements, expected 8"), "train");
    expect(f).toEqual({ code: 1, message: "conv3dFwd: x has 3 elements, expected 8" });
  });

  test("usage errors exit 2, other errors 1 with the verb", () => {
    expect(describeFailure(new UsageError("unknown option --x for nndet env"), "env").code).toBe(2);
    const cli = Object.assign(new Error("Missing required positional argument: TASK"), { name: "CLIError" });
    expect(describeFailure(cli, "prep").code).toBe(2);
    expect(describeFailure(new Error("disk full"), "prep")).toEqual({ code: 1, message: "nndet prep: disk full" });
  });
});
