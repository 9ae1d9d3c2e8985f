//! The deployment files under `deploy/` are what operators install: each is checked by the
//! tool that will read it.

use std::process::Command;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::tools;
use anyhow::{Context, Result, ensure};

/// `systemd-analyze verify` accepts the units as shipped (the service and the socket that
/// holds its challenge listener across restarts), without a single warning. It needs the
/// unit's binary to exist, so the check runs on copies pointing at the one just built.
#[test]
fn the_systemd_units_verify_without_warnings() -> Result<()> {
    let deploy = tools::workspace_root().join("deploy");
    let read = |name: &str| {
        let path = deploy.join(name);
        std::fs::read_to_string(&path).with_context(|| path.display().to_string())
    };
    let service = read("acme-edge.service")?;
    let socket = read("acme-edge.socket")?;
    ensure!(
        service.contains("ExecStart=/usr/local/bin/acme-edge serve"),
        "the unit runs the installed binary"
    );
    let backend = tools::backend_bin()?;
    let dir = tempfile::tempdir()?;
    let service_copy = dir.path().join("acme-edge.service");
    let socket_copy = dir.path().join("acme-edge.socket");
    std::fs::write(
        &service_copy,
        service.replace("/usr/local/bin/acme-edge", &backend.display().to_string()),
    )?;
    std::fs::write(&socket_copy, &socket)?;
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&service_copy)
        .arg(&socket_copy)
        .output()
        .context("run systemd-analyze (cargo xtask install installs it)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "StateDirectory=acme-edge",
        "RuntimeDirectory=acme-edge",
        "User=acme-edge",
    ] {
        ensure!(service.contains(hardening), "the unit sets {hardening:?}");
    }
    // The socket is the one the service takes, at the example configuration's address.
    let example =
        std::fs::read_to_string(tools::workspace_root().join("backend/acme-edge.example.toml"))?;
    let challenge_listen = example
        .split("\n[challenge]\n")
        .nth(1)
        .and_then(|section| section.lines().find(|l| l.starts_with("listen = ")))
        .context("the example configuration's challenge.listen")?;
    let addr = challenge_listen
        .trim_start_matches("listen = ")
        .trim_matches('"');
    for line in [
        format!("ListenStream={addr}"),
        "FileDescriptorName=challenge".to_owned(),
        "Service=acme-edge.service".to_owned(),
    ] {
        ensure!(socket.contains(&line), "the socket unit sets {line:?}");
    }
    Ok(())
}

/// The console's files, as the backend serves them (`acme_edge::api::console`).
const CONSOLE_FILES: [&str; 5] = [
    "index.html",
    "boot.js",
    "console.js",
    "console_bg.wasm",
    "console.css",
];
/// Where the image puts the console: `share/acme-edge/console` under the backend's prefix
/// (`/usr/local`), where the backend looks when nothing is configured.
const IMAGE_CONSOLE_DIR: &str = "usr/local/share/acme-edge/console";

/// The container image of `deploy/Containerfile` (built from `cargo xtask dist`'s layout: the
/// backend, the console, the filter, `rootfs/`), built with podman and inspected without
/// running it (the file system exported from a created container): the backend runs
/// `--version` from it, the console's files, the filter and the CA roots are there, the user
/// is not root, the state directory is a volume the user owns. Skipped, saying so, where
/// podman is not installed (`cargo xtask install` installs it).
#[test]
fn the_container_image_holds_the_backend_the_console_the_filter_and_ca_roots_for_a_non_root_user()
-> Result<()> {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed (cargo xtask install installs it)");
        return Ok(());
    }
    let context = tempfile::tempdir()?;
    dist_layout(context.path())?;
    let image = Image::build(context.path())?;

    let config = podman(&[
        "image",
        "inspect",
        &image.tag,
        "--format",
        "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Entrypoint}}",
    ])?;
    ensure!(
        config.starts_with("65532:65532 "),
        "numeric non-root user: {config}"
    );
    ensure!(
        config.contains(r#""/var/lib/acme-edge":{}"#),
        "the state directory is a volume: {config}"
    );
    ensure!(
        config.contains(r#"["/usr/local/bin/acme-edge"]"#),
        "the backend is the entrypoint: {config}"
    );

    let rootfs = tempfile::tempdir()?;
    image.export_to(rootfs.path())?;
    let root = rootfs.path();
    let version = Command::new(root.join("usr/local/bin/acme-edge"))
        .arg("--version")
        .output()
        .context("run the image's acme-edge --version")?;
    let version = String::from_utf8_lossy(&version.stdout);
    ensure!(
        version.starts_with(&format!("acme-edge {}", env!("CARGO_PKG_VERSION"))),
        "the image's backend says {version:?}"
    );
    check_console(&root.join(IMAGE_CONSOLE_DIR))?;
    tokio::runtime::Runtime::new()?.block_on(serves_its_console(root))?;
    let filter = std::fs::read(root.join("usr/share/acme-edge/acme_edge_filter.wasm"))?;
    ensure!(filter.starts_with(b"\0asm"), "the filter is a wasm module");
    let roots = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt"))?;
    ensure!(
        roots.matches("BEGIN CERTIFICATE").count() > 10,
        "the CA roots are there"
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd"))?;
    ensure!(
        passwd.contains("acme-edge:x:65532:65532:"),
        "the user has a name: {passwd}"
    );
    let listing = podman_export_listing(&image)?;
    ensure!(
        listing
            .lines()
            .any(|l| l.contains("65532/65532") && l.trim_end().ends_with("var/lib/acme-edge/")),
        "the user owns its state directory:\n{listing}"
    );
    Ok(())
}

/// The files `cargo xtask dist` puts in `dist/` that the Containerfile copies, from the
/// builds under test (xtask/src/dist.rs makes the same layout from release builds).
fn dist_layout(dir: &std::path::Path) -> Result<()> {
    let root = tools::workspace_root();
    let copy = |from: &std::path::Path, to: &str| -> Result<()> {
        let to = dir.join(to);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &to).with_context(|| format!("copy {}", from.display()))?;
        Ok(())
    };
    copy(&root.join("deploy/Containerfile"), "Containerfile")?;
    copy(&tools::backend_bin()?, "acme-edge")?;
    let console = console_dir()?;
    for file in CONSOLE_FILES {
        copy(&console.join(file), &format!("console/{file}"))?;
    }
    copy(&tools::filter_wasm()?, "acme_edge_filter.wasm")?;
    copy(
        &root.join("backend/acme-edge.example.toml"),
        "acme-edge.example.toml",
    )?;
    for file in ["etc/passwd", "etc/group"] {
        copy(
            &root.join("deploy/rootfs").join(file),
            &format!("rootfs/{file}"),
        )?;
    }
    copy(
        std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"),
        "rootfs/etc/ssl/certs/ca-certificates.crt",
    )?;
    for empty in ["rootfs/var/lib/acme-edge", "rootfs/run/acme-edge"] {
        std::fs::create_dir_all(dir.join(empty))?;
    }
    Ok(())
}

/// The console built beside the backend under test (`cargo xtask build` puts it there).
fn console_dir() -> Result<std::path::PathBuf> {
    let backend = tools::backend_bin()?;
    let dir = backend
        .parent()
        .context("the backend binary has no directory")?
        .join("console");
    ensure!(
        dir.join("index.html").is_file(),
        "no console in {}: build it with cargo xtask build",
        dir.display()
    );
    Ok(dir)
}

/// The image's backend, run from the exported file system with no `admin.console_dir`,
/// serves the console the image holds at `/console/`.
async fn serves_its_console(root: &std::path::Path) -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let backend = Backend::builder()
        .binary(root.join("usr/local/bin/acme-edge"))
        .pebble(&pebble)
        .start()
        .await?;
    let url = format!("{}/console/", backend.admin_url());
    let page = reqwest::get(&url).await?;
    ensure!(
        page.status() == 200,
        "{url}: {}\n{}",
        page.status(),
        backend.log()
    );
    let served = page.text().await?;
    let shipped = std::fs::read_to_string(root.join(IMAGE_CONSOLE_DIR).join("index.html"))?;
    ensure!(served == shipped, "{url} is not the image's index.html");
    ensure!(
        backend.log().contains(IMAGE_CONSOLE_DIR),
        "the backend names where it found the console:\n{}",
        backend.log()
    );
    Ok(())
}

/// Every console file is in `dir`: the page that loads it, and the WebAssembly module.
fn check_console(dir: &std::path::Path) -> Result<()> {
    for file in CONSOLE_FILES {
        let path = dir.join(file);
        let len = std::fs::metadata(&path)
            .with_context(|| format!("the image lacks the console's {file}"))?
            .len();
        ensure!(len > 0, "the image's {} is empty", path.display());
    }
    let page = std::fs::read_to_string(dir.join("index.html"))?;
    ensure!(
        page.contains("<script type=\"module\" src=\"boot.js\">"),
        "the image's index.html is not the console's page:\n{page}"
    );
    let wasm = std::fs::read(dir.join("console_bg.wasm"))?;
    ensure!(wasm.starts_with(b"\0asm"), "the console is a wasm module");
    Ok(())
}

/// An image built for one test, removed with its containers on drop.
struct Image {
    tag: String,
}

impl Image {
    fn build(context: &std::path::Path) -> Result<Image> {
        let tag = format!("localhost/acme-edge-test-{}", std::process::id());
        let context = context.display().to_string();
        podman(&["build", "--quiet", "--tag", &tag, &context])?;
        Ok(Image { tag })
    }

    /// The image's file system, unpacked into `dir`.
    fn export_to(&self, dir: &std::path::Path) -> Result<()> {
        let tar = self.export()?;
        let mut untar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("run tar")?;
        use std::io::Write;
        untar.stdin.take().context("tar's stdin")?.write_all(&tar)?;
        ensure!(untar.wait()?.success(), "tar -x failed");
        Ok(())
    }

    /// `podman create` (nothing runs) then `podman export`: the file system as a tar stream.
    fn export(&self) -> Result<Vec<u8>> {
        let container = podman(&["create", &self.tag])?;
        let container = container.trim();
        let out = Command::new("podman")
            .args(["export", container])
            .output()
            .context("run podman export");
        let _ = podman(&["rm", "--force", container]);
        let out = out?;
        ensure!(
            out.status.success(),
            "podman export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", &self.tag]);
    }
}

/// `tar -tv` of the image's file system (numeric owners, modes).
fn podman_export_listing(image: &Image) -> Result<String> {
    let tar = image.export()?;
    let mut list = Command::new("tar")
        .args(["-tv", "--numeric-owner"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("run tar")?;
    let mut stdin = list.stdin.take().context("tar's stdin")?;
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&tar)
    });
    let out = list.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to tar panicked"))??;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run podman; its stdout, or an error with its stderr.
fn podman(args: &[&str]) -> Result<String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .context("run podman")?;
    ensure!(
        out.status.success(),
        "podman {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
