// The native library as a file import: `bun build --compile` embeds it into the binary; in a dev run this
// resolves to the dev build. Kept in its own module so a missing build only fails the require() in lib.ts.
import path from "../../build/lib/libnndet_core.so" with { type: "file" };

export default path;
