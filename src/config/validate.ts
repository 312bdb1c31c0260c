// Validation of JSON artifacts with valibot: one place that turns a schema failure into a readable error
// naming the file, the artifact and the field.
import * as v from "valibot";

/** Parse `json` with `schema`, or throw `WHERE: invalid WHAT at 'field.path': message`. */
export function parseArtifact<S extends v.GenericSchema>(
  schema: S,
  json: unknown,
  where: string,
  what: string,
): v.InferOutput<S> {
  const r = v.safeParse(schema, json);
  if (!r.success) {
    const issue = r.issues[0];
    const path = issue ? (v.getDotPath(issue) ?? "") : "";
    throw new Error(`${where}: invalid ${what} at '${path}': ${issue?.message}`);
  }
  return r.output;
}
