//! Records which Python the host library is built against (the same
//! interpreter pyo3 uses: $PYO3_PYTHON, else python3), so that the plugin can
//! look for the matching libpython at run time and say why when it is absent.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = "import sys, sysconfig\n\
        print('%d.%d' % sys.version_info[:2])\n\
        print(sysconfig.get_config_var('LIBDIR') or '')\n\
        print(sysconfig.get_config_var('INSTSONAME') or sysconfig.get_config_var('LDLIBRARY') or '')\n\
        print(sys.version.split()[0])";
    let out = Command::new(&python).args(["-c", script]).output();
    let (version, libdir, soname, full) = match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let mut lines = text.lines().map(str::to_string);
            (
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
            )
        }
        _ => (String::new(), String::new(), String::new(), String::new()),
    };
    println!("cargo:rustc-env=GGCORE_PY_VERSION={version}");
    println!("cargo:rustc-env=GGCORE_PY_LIBDIR={libdir}");
    println!("cargo:rustc-env=GGCORE_PY_SONAME={soname}");
    println!("cargo:rustc-env=GGCORE_PY_FULL_VERSION={full}");
}
