//! Build script. Compiles the kernels of `../../cuda/*.cu` twice:
//! - with nvcc when available (GPU build, cfg `nd_cuda`), linking the CUDA runtime statically so the library
//!   needs only the NVIDIA driver at run time; otherwise the Cuda backend is a stub answering NoCuda;
//! - always with the host C++ compiler (`CXX`, default `c++`) against `cuda/emu/` (-DND_EMU): the CPU
//!   emulator of the same kernels (launchers `ndke_*`), which the tests run on every machine.
//!
//! NDET_CUDA=0 forces the stub, NDET_CUDA=1 requires nvcc. NDET_CUDA_ARCHS (default "80,90") lists the
//! SASS targets; PTX for the highest is always added so newer GPUs can JIT it. `runtime.cu` is GPU-only
//! (the emulator has `emu/runtime.cpp`). Compilations run in parallel.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Run the commands, at most `jobs` at a time; panic naming the source that failed.
fn run_all(cmds: Vec<(Command, PathBuf)>, jobs: usize) {
    let mut running: Vec<(Child, PathBuf)> = Vec::new();
    let wait_one = |running: &mut Vec<(Child, PathBuf)>| {
        let (mut c, src) = running.remove(0);
        let st = c.wait().expect("wait for compiler");
        assert!(st.success(), "compiling {} failed", src.display());
    };
    for (mut cmd, src) in cmds {
        if running.len() >= jobs {
            wait_one(&mut running);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start compiler for {}: {e}", src.display()));
        running.push((child, src));
    }
    while !running.is_empty() {
        wait_one(&mut running);
    }
}

fn archive(lib: &Path, objects: &[PathBuf]) {
    let _ = std::fs::remove_file(lib);
    let status = Command::new("ar").arg("crs").arg(lib).args(objects).status().expect("run ar");
    assert!(status.success(), "ar failed for {}", lib.display());
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nd_cuda)");
    for v in ["NDET_CUDA", "NDET_CUDA_ARCHS", "CUDA_HOME", "PATH", "CXX"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let cuda_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda");
    let emu_dir = cuda_dir.join("emu");
    println!("cargo:rerun-if-changed={}", cuda_dir.display());
    println!("cargo:rerun-if-changed={}", emu_dir.display());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let kernels = files(&cuda_dir, "cu");
    for p in kernels.iter().chain(&files(&cuda_dir, "cuh")).chain(&files(&emu_dir, "h")).chain(&files(&emu_dir, "cpp")) {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    // The emulator build: every kernel file but the GPU runtime, plus the emulator itself. NOTE: built with
    // the alignment sanitizer in trap mode (no runtime library): a misaligned typed access, e.g. a 16-byte
    // vector load, kills the process with SIGILL, as the GPU would fault.
    let cxx = env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let mut cmds = Vec::new();
    let mut objects = Vec::new();
    let emu_cpp = files(&emu_dir, "cpp");
    let emu_sources = kernels.iter().filter(|p| p.file_name().is_some_and(|n| n != "runtime.cu")).chain(&emu_cpp).cloned();
    for src in emu_sources {
        let obj = out.join(format!("emu-{}.o", src.file_stem().unwrap().to_string_lossy()));
        let mut c = Command::new(&cxx);
        c.args(["-x", "c++", "-std=c++17", "-O2", "-g0", "-fPIC", "-fvisibility=hidden", "-fno-strict-aliasing"])
            .args(["-Wno-unknown-pragmas", "-DND_EMU", "-fsanitize=alignment", "-fsanitize-undefined-trap-on-error", "-c"])
            .arg("-I")
            .arg(&cuda_dir)
            .arg("-o")
            .arg(&obj)
            .arg(&src);
        cmds.push((c, src));
        objects.push(obj);
    }

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
    let mut gpu_objects = Vec::new();
    let home = nvcc.as_deref().map(cuda_home);
    if want {
        let nvcc = nvcc.clone().unwrap();
        let archs = env::var("NDET_CUDA_ARCHS").unwrap_or_else(|_| "80,90".to_string());
        let archs: Vec<&str> = archs.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut gencode = Vec::new();
        for a in &archs {
            gencode.push(format!("-gencode=arch=compute_{a},code=sm_{a}"));
        }
        let top = archs.last().expect("NDET_CUDA_ARCHS is empty");
        gencode.push(format!("-gencode=arch=compute_{top},code=compute_{top}"));
        for src in &kernels {
            let obj = out.join(format!("{}.o", src.file_stem().unwrap().to_string_lossy()));
            let mut c = Command::new(&nvcc);
            c.args(["-c", "-O3", "-std=c++17", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden"])
                .args(&gencode)
                .arg("-I")
                .arg(&cuda_dir)
                .arg("-o")
                .arg(&obj)
                .arg(src);
            cmds.push((c, src.clone()));
            gpu_objects.push(obj);
        }
    } else {
        println!("cargo:warning=nndet-core: building without CUDA (stub backend; the emulator is built)");
    }
    run_all(cmds, jobs);

    // NOTE: the emulator objects define the same kernel symbols as the nvcc objects. Link them into one
    // relocatable object and make every hidden symbol local, so only the `ndke_*` exports stay global.
    let emu_obj = out.join("ndk_emu_all.o");
    let st = Command::new("ld").arg("-r").arg("-o").arg(&emu_obj).args(&objects).status().expect("run ld -r");
    assert!(st.success(), "ld -r of the emulator objects failed");
    let st = Command::new("objcopy").arg("--localize-hidden").arg(&emu_obj).status().expect("run objcopy");
    assert!(st.success(), "objcopy --localize-hidden failed");
    archive(&out.join("libndk_emu.a"), &[emu_obj]);
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=ndk_emu");
    if want {
        archive(&out.join("libndk.a"), &gpu_objects);
        println!("cargo:rustc-link-lib=static=ndk");
        let home = home.unwrap();
        for sub in ["lib64", "lib", "targets/x86_64-linux/lib"] {
            let d = home.join(sub);
            if d.join("libcudart_static.a").exists() {
                println!("cargo:rustc-link-search=native={}", d.display());
            }
        }
        println!("cargo:rustc-link-lib=static=cudart_static");
        for l in ["dl", "rt", "pthread"] {
            println!("cargo:rustc-link-lib=dylib={l}");
        }
        println!("cargo:rustc-cfg=nd_cuda");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
