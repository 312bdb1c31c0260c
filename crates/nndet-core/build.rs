//! Build script: compile `../../cuda/*.cu` with nvcc when available and link the CUDA runtime statically,
//! so the library needs only the NVIDIA driver at run time; otherwise build the stub backend.
//!
//! NDET_CUDA=0 forces the stub, NDET_CUDA=1 requires nvcc. NDET_CUDA_ARCHS (default "80,90") lists the
//! SASS targets; PTX for the highest is always added so newer GPUs can JIT it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(home) = env::var("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.exists() {
            return Some(p);
        }
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join("nvcc")).find(|p| p.exists())
}

fn cuda_home(nvcc: &Path) -> PathBuf {
    if let Ok(home) = env::var("CUDA_HOME") {
        return PathBuf::from(home);
    }
    // nvcc may be a wrapper script or a link: ask it where its toolkit is (`#$ TOP=...` in a dry run).
    let probe = Command::new(nvcc).args(["--dryrun", "-c", "x.cu"]).output();
    if let Ok(o) = probe {
        let text = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        if let Some(top) = text.lines().find_map(|l| l.strip_prefix("#$ TOP=")) {
            return std::fs::canonicalize(top.trim()).unwrap_or_else(|_| PathBuf::from(top.trim()));
        }
    }
    let real = std::fs::canonicalize(nvcc).unwrap_or_else(|_| nvcc.to_path_buf());
    real.parent().and_then(|b| b.parent()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/usr/local/cuda"))
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nd_cuda)");
    println!("cargo:rerun-if-env-changed=NDET_CUDA");
    println!("cargo:rerun-if-env-changed=NDET_CUDA_ARCHS");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=PATH");
    let cuda_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda");
    println!("cargo:rerun-if-changed={}", cuda_dir.display());

    let force = env::var("NDET_CUDA").ok();
    let nvcc = find_nvcc();
    let want = match force.as_deref() {
        Some("0") => false,
        Some("1") => {
            assert!(nvcc.is_some(), "NDET_CUDA=1 but nvcc was not found on PATH or in CUDA_HOME");
            true
        }
        _ => nvcc.is_some(),
    };
    if !want {
        println!("cargo:warning=nndet-core: building without CUDA (stub backend)");
        return;
    }
    let nvcc = nvcc.unwrap();
    let home = cuda_home(&nvcc);
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let archs = env::var("NDET_CUDA_ARCHS").unwrap_or_else(|_| "80,90".to_string());
    let archs: Vec<&str> = archs.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut gencode = Vec::new();
    for a in &archs {
        gencode.push(format!("-gencode=arch=compute_{a},code=sm_{a}"));
    }
    let top = archs.last().expect("NDET_CUDA_ARCHS is empty");
    gencode.push(format!("-gencode=arch=compute_{top},code=compute_{top}"));

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&cuda_dir)
        .expect("read cuda/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh"))
        .collect();
    sources.sort();
    let mut objects = Vec::new();
    for src in sources.iter().filter(|p| p.extension().is_some_and(|x| x == "cu")) {
        println!("cargo:rerun-if-changed={}", src.display());
        let obj = out.join(format!("{}.o", src.file_stem().unwrap().to_string_lossy()));
        let status = Command::new(&nvcc)
            .args(["-c", "-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden"])
            .args(&gencode)
            .arg("-I")
            .arg(&cuda_dir)
            .arg("-o")
            .arg(&obj)
            .arg(src)
            .status()
            .expect("run nvcc");
        assert!(status.success(), "nvcc failed on {}", src.display());
        objects.push(obj);
    }
    for h in sources.iter().filter(|p| p.extension().is_some_and(|x| x == "cuh")) {
        println!("cargo:rerun-if-changed={}", h.display());
    }
    let lib = out.join("libndk.a");
    let _ = std::fs::remove_file(&lib);
    let status = Command::new("ar").arg("crs").arg(&lib).args(&objects).status().expect("run ar");
    assert!(status.success(), "ar failed");

    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=ndk");
    for sub in ["lib64", "lib", "targets/x86_64-linux/lib"] {
        let d = home.join(sub);
        if d.join("libcudart_static.a").exists() {
            println!("cargo:rustc-link-search=native={}", d.display());
        }
    }
    println!("cargo:rustc-link-lib=static=cudart_static");
    for l in ["dl", "rt", "pthread", "stdc++"] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    println!("cargo:rustc-cfg=nd_cuda");
}
