// Module declarations for non-code imports: a native library imported `with { type: "file" }` is its path.
declare module "*.so" {
  const path: string;
  export default path;
}
