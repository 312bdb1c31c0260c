// Task resolution as nnDetection's get_task, case ids from modality suffixes, dataset file search order and schema,
// label json rules.
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datasetProblems, findDatasetFile, labelJsonProblems, loadDataset } from "../../src/config/dataset";
import { caseIds, resolveTask } from "../../src/io/task";

const root = mkdtempSync(join(tmpdir(), "nndet-task-"));
for (const t of ["Task000D3_Example", "Task012_LIDC", "Task112_LIDCx", "Task013_Kits"]) mkdirSync(join(root, t));
writeFileSync(join(root, "Task999_File"), "not a folder");
mkdirSync(join(root, "other"));

describe("resolveTask", () => {
  const cases: [string, string][] = [
    ["000", "Task000D3_Example"],
    ["Task000D3_Example", "Task000D3_Example"],
    ["Example", "Task000D3_Example"],
    ["012", "Task012_LIDC"],
    ["012_LIDC", "Task012_LIDC"],
    ["Task012_LIDC", "Task012_LIDC"],
    ["LIDC", "Task012_LIDC"], // substring ambiguous (LIDC, LIDCx); the part after '_' decides
    ["Kits", "Task013_Kits"],
    ["13", "Task013_Kits"],
  ];
  for (const [id, want] of cases) test(`${id} -> ${want}`, () => expect(resolveTask(id, root).name).toBe(want));
  test("unknown, ambiguous and files are refused", () => {
    expect(() => resolveTask("777", root)).toThrow("cannot find task '777'");
    expect(() => resolveTask("1", root)).toThrow("ambiguous");
    expect(() => resolveTask("999", root)).toThrow("cannot find task");
    expect(() => resolveTask("000", join(root, "nope"))).toThrow("not a readable folder");
  });
  test("layout", () => {
    const t = resolveTask("000", root);
    expect(t.imagesTr).toBe(join(root, "Task000D3_Example/raw_splitted/imagesTr"));
    expect(t.labelsTs).toBe(join(root, "Task000D3_Example/raw_splitted/labelsTs"));
  });
});

test("case ids strip .nii.gz and the _XXXX modality suffix", () => {
  const d = join(root, "imgs");
  mkdirSync(d);
  for (const f of ["case_10_0000.nii.gz", "case_10_0001.nii.gz", "case_2_0000.nii.gz", "lung_a_0000.nii.gz", "notes.txt", "x_0000.nii"]) {
    writeFileSync(join(d, f), "");
  }
  expect(caseIds(d)).toEqual(["case_2", "case_10", "lung_a"]);
});

describe("dataset file", () => {
  const ok = { task: "Task000D3_Example", dim: 3, labels: { "0": "a", "1": "b" }, modalities: { "0": "CT" }, test_labels: true, target_class: null };
  test("valid", () => expect(datasetProblems(ok)).toEqual([]));
  test("search order yaml, yml, json", () => {
    const d = join(root, "Task013_Kits");
    writeFileSync(join(d, "dataset.json"), JSON.stringify(ok));
    expect(findDatasetFile(d)).toBe(join(d, "dataset.json"));
    writeFileSync(join(d, "dataset.yml"), "task: Task013_Kits\ndim: 3\nlabels: {'0': kidney}\nmodalities: {'0': CT}\ntest_labels: false\n");
    expect(findDatasetFile(d)).toBe(join(d, "dataset.yml"));
    writeFileSync(join(d, "dataset.yaml"), "task: [unclosed\n");
    expect(() => loadDataset(d)).toThrow("dataset.yaml: cannot parse");
    writeFileSync(join(d, "dataset.yaml"), "task: Task013_Kits\ndim: 3\nlabels:\n  '0': kidney\nmodalities:\n  '0': CT\ntest_labels: false\n");
    expect(loadDataset(d).dataset.labels).toEqual({ "0": "kidney" });
  });
  test("every problem is listed", () => {
    const p = datasetProblems({ ...ok, dim: 4, labels: { "1": "a" }, modalities: { "1": "CT" }, target_class: 5, test_labels: undefined });
    expect(p.join("\n")).toContain("'dim': must be 2 or 3");
    expect(p.join("\n")).toContain("'labels': keys must be");
    expect(p.join("\n")).toContain("'modalities': keys must be");
    expect(p.join("\n")).toContain("'target_class'");
    expect(p.join("\n")).toContain("'test_labels'");
    expect(datasetProblems({ dim: "3" }).join("\n")).toContain("'task'");
    expect(datasetProblems({ ...ok, labels: { "0": 1 } }).join("\n")).toContain("labels.0");
  });
});

describe("label json", () => {
  const labels = { "0": "a", "1": "b" };
  test("valid and empty", () => {
    expect(labelJsonProblems({ instances: { "1": 0, "2": 1 } }, labels).problems).toEqual([]);
    expect(labelJsonProblems({ instances: {} }, labels).problems).toEqual([]);
  });
  test("ids, classes, shape", () => {
    expect(labelJsonProblems({ instances: { "2": 0 } }, labels).problems[0]).toContain("1..1");
    expect(labelJsonProblems({ instances: { "1": 2 } }, labels).problems[0]).toContain("class 2 is not in");
    expect(labelJsonProblems({ instances: { "1": "0" } }, labels).problems[0]).toContain("not an integer");
    expect(labelJsonProblems({ instances: { a: 0 } }, labels).problems[0]).toContain("not a positive integer");
    expect(labelJsonProblems([1], labels).problems[0]).toContain('"instances"');
  });
});

test("cleanup", () => rmSync(root, { recursive: true, force: true }));
