//! The `streambox` command: `serve` runs the service; `stream …` manages streams and
//! their keys in the same database, also while the service runs.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use streambox::app::App;
use streambox::auth::stream_keys;
use streambox::config::Config;
use streambox::dvr::{self, settings as dvr_settings};
use streambox::ingest::rtsp_pull::sources;
use streambox::manage::{self, Ops};
use streambox::streams::Kind;
use streambox::{db, http, ingest};
use tracing::info;

/// jemalloc: a long-running server's memory stays flat under churn (segments, parts and
/// playlists made and dropped on many threads), where glibc's per-thread arenas hold on
/// to freed memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "streambox",
    version,
    about = "Streaming appliance: RTMP in, LL-HLS and DASH out"
)]
struct Cli {
    /// TOML configuration file (optional; embedded defaults otherwise).
    #[arg(long, global = true, env = "STREAMBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, recordings); overrides the file and STREAMBOX_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// RTMP listen address (default 0.0.0.0:1935; port 0 picks a free port).
        #[arg(long)]
        rtmp_listen: Option<SocketAddr>,
        /// HTTP listen address (default 0.0.0.0:8080; port 0 picks a free port).
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// RTSP listen address (default 0.0.0.0:8554; port 0 picks a free port).
        #[arg(long)]
        rtsp_listen: Option<SocketAddr>,
    },
    /// Manage streams and their publish keys.
    Stream {
        #[command(subcommand)]
        command: StreamCommand,
    },
    /// Recordings.
    Dvr {
        #[command(subcommand)]
        command: DvrCommand,
    },
    /// Manage RTSP cameras that streambox pulls from.
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Capture devices, sound cards and GPUs on this machine.
    Hw {
        #[command(subcommand)]
        command: HwCommand,
    },
    /// List every HTTP route with who may use it (public, setup, sign-in, admin, api).
    Routes,
    /// Print where to open this box in a browser (every address, and the HTTPS
    /// certificate's fingerprint), again whenever that changes: the appliance's console
    /// banner on tty1 and the serial port.
    Console {
        /// Print it once and exit.
        #[arg(long)]
        once: bool,
    },
    /// The appliance's network helper, run as root with `CAP_NET_ADMIN` alone by
    /// `streambox-netplan.service`: serves the service's typed network changes on a
    /// Unix socket and makes them through netplan's D-Bus API. Not for use by hand.
    #[command(hide = true)]
    NetplanHelper {
        /// The socket to listen on (a stale one there is replaced).
        #[arg(long, default_value = streambox::system::netplan_helper::SOCKET)]
        socket: std::path::PathBuf,
    },
    /// Back up the configuration (not the recordings) to one file, or restore one.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Wait until the service answers on its HTTP listener (`/healthz`), at most
    /// `--within` seconds; exit non-zero with the reason otherwise, written to
    /// `--record` too. The appliance's streambox-healthy.service runs it to keep a root
    /// slot on trial after an update, or give it up.
    Health {
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 90)]
        within: u64,
        /// Where to record why it is not healthy (with the booted slot and release).
        #[arg(long)]
        record: Option<std::path::PathBuf>,
    },
    /// Erase this appliance's state so the setup wizard runs again.
    Reset {
        /// Erase everything: users, streams and keys, cameras, settings, the audit log
        /// and all recordings. The service must be stopped. Asks to type "reset".
        #[arg(long, required = true)]
        factory: bool,
        /// Do not ask (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write a backup of the configuration (users, streams and their keys, cameras,
    /// settings, the VPN's peers, the HTTPS certificate and key) as a .tar.zst file.
    /// Works while the service runs.
    Create {
        /// The file to write (`-` for standard output); by default
        /// `streambox-NAME-YYYYMMDD-HHMMSS.tar.zst` in the current directory.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Replace this box's configuration with a backup's. The recordings on this box are
    /// kept. The service must be stopped (restore from the admin pages while it runs).
    Restore {
        /// The backup file (made by `backup create` or "Back up configuration").
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum HwCommand {
    /// List video capture devices (with the formats, sizes and rates each offers),
    /// sound cards' capture PCMs, and GPUs (ABR rungs encode on the CPU for now).
    List {
        /// Print the inventory as JSON (as `GET /api/hardware` answers).
        #[arg(long)]
        json: bool,
    },
    /// What libva says of a DRM render node, as JSON; run by the service itself, so that
    /// a GPU driver runs in a process of its own.
    #[command(hide = true)]
    Vaapi {
        /// The render node (`/dev/dri/renderD128`).
        node: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum DvrCommand {
    /// List the recorded ranges of a stream, and the gaps between them.
    Ranges {
        /// Stream or camera name.
        name: String,
    },
    /// Export a recorded range as one MP4 file (no re-encode; starts at the keyframe at
    /// or before --from).
    Export {
        /// Stream or camera name.
        name: String,
        /// Start: RFC 3339 (2026-11-21T16:40:00Z) or Unix seconds.
        #[arg(long)]
        from: String,
        /// End: RFC 3339 or Unix seconds.
        #[arg(long)]
        to: String,
        /// The MP4 file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum SourceCommand {
    /// Add a camera: the stream NAME is fed from its RTSP URL
    /// (rtsp://user:password@host:554/path), or with --device from a capture device on
    /// this box (a USB camera, an HDMI capture dongle). The running service connects
    /// within seconds.
    Add {
        /// Stream name: 1-64 of a-z, 0-9, '_' and '-'.
        name: String,
        /// The camera's RTSP URL; credentials in it are stored, never shown in full.
        #[arg(required_unless_present = "device", conflicts_with = "device")]
        url: Option<String>,
        /// How RTP travels from the camera: tcp (interleaved, default) or udp.
        #[arg(long, default_value = "tcp")]
        transport: String,
        /// A capture device's stable ID, as `streambox hw list` shows it
        /// (usb-…-video-index0): the source follows the device to any USB port.
        #[arg(long)]
        device: Option<String>,
        /// The capture size, WIDTHxHEIGHT (default: the device's largest up to 1920x1080).
        #[arg(long, requires = "device")]
        size: Option<String>,
        /// The capture frame rate (default: the device's fastest up to 30 fps).
        #[arg(long, requires = "device")]
        fps: Option<String>,
        /// The bitrate to encode at, such as 4M or 2500k (default: one that fits the
        /// size; a camera that encodes H.264 itself is passed through as it is).
        #[arg(long, requires = "device")]
        bitrate: Option<String>,
        /// The sound card to record with the pictures, as `streambox hw list` shows its
        /// capture device (hw:CARD=…,DEV=N), encoded to AAC-LC (default: no sound).
        #[arg(long, requires = "device")]
        audio: Option<String>,
    },
    /// List cameras and capture sources with their state, last error, bitrate and uptime.
    List,
    /// Remove a camera or capture source; its RTSP session is torn down, or its device
    /// let go.
    Rm {
        /// Stream name.
        name: String,
    },
}

#[derive(Subcommand)]
enum StreamCommand {
    /// Create a stream and print its key (shown only once) and the OBS settings.
    Add {
        /// Stream name: 1-64 of a-z, 0-9, '_' and '-'.
        name: String,
    },
    /// List streams.
    List,
    /// Delete a stream; its key stops working.
    Rm {
        /// Stream name.
        name: String,
    },
    /// Change a stream's (or camera's) recording settings and ABR ladder.
    Set {
        /// Stream or camera name.
        name: String,
        /// Record new segments: on or off.
        #[arg(long, value_parser = ["on", "off"])]
        record: Option<String>,
        /// Delete recordings older than this (7d, 12h, 90min…, or none).
        #[arg(long)]
        keep: Option<String>,
        /// Delete the oldest recordings beyond this size (50GB, 500MiB…, or none).
        #[arg(long)]
        keep_bytes: Option<String>,
        /// ABR renditions made from the source, highest first: 1080p,720p,480p,360p
        /// (each optionally :BITRATE and :FPS, e.g. 480p:900k:15fps), a preset
        /// (standard, full), or source for passthrough only.
        #[arg(long)]
        ladder: Option<String>,
        /// The picture quality of the ABR renditions: efficient (least CPU), balanced
        /// (the default) or best (most CPU). A machine short of CPU makes a rung cheaper
        /// rather than dropping it, and moves it back up when there is room.
        #[arg(long, value_parser = ["efficient", "balanced", "best"])]
        quality: Option<String>,
        /// Encrypt the stream's HLS media for viewers (AES-128): on or off.
        #[arg(long, value_parser = ["on", "off"])]
        encrypt: Option<String>,
        /// With --encrypt on: how often its key changes (10m, 1h… up to 24h, or never;
        /// default 10m).
        #[arg(long, requires = "encrypt")]
        rotate: Option<String>,
    },
    /// Replace a stream's key; the old key stops working at once.
    RotateKey {
        /// Stream name.
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without a backtrace: this is for the person at the shell.
            eprintln!("streambox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The async runtime: tokio's multi-threaded scheduler, one worker per core, tuned to be
/// fair to viewers when it is saturated. With its defaults, 1000 keep-alive clients of
/// one core saw a 14 ms mean but a 176 ms worst request: IO events beyond a worker's
/// local run queue (256 tasks) wait in the global queue, which the worker looks at only
/// every few dozen tasks while the driver keeps refilling the local one. Looking at the
/// global queue every other task and polling the driver every 200 tasks made it 41 ms
/// at the same requests/s (bench/side_by_side.sh --fanout; README, fan-out).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(2)
        .event_interval(200)
        .build()
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // stderr, and the last lines in memory for the System page.
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::try_from_env("STREAMBOX_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .fmt_fields(streambox::system::log::fields())
                    .with_writer(std::io::stderr),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .fmt_fields(streambox::system::log::fields())
                    .with_writer(streambox::system::log::Recent),
            )
            .init();
    }
    let mut cfg = Config::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    let rt = runtime().context("starting the async runtime")?;
    let done = rt.block_on(async move {
        match cli.command {
            Command::Serve {
                rtmp_listen,
                http_listen,
                rtsp_listen,
            } => {
                if let Some(a) = rtsp_listen {
                    cfg.rtsp.listen = a;
                }
                if let Some(a) = rtmp_listen {
                    cfg.rtmp.listen = a;
                }
                if let Some(a) = http_listen {
                    cfg.http.listen = a;
                }
                serve(cfg).await
            }
            Command::Stream { command } => stream(cfg, command).await,
            Command::Source { command } => source(cfg, command).await,
            Command::Dvr { command } => dvr_command(cfg, command).await,
            Command::Routes => {
                for r in http::routes() {
                    println!("{}\t{}\t{}", r.method, r.path, r.access.as_str());
                }
                Ok(())
            }
            Command::Reset { factory: _, yes } => factory_reset(&cfg, yes),
            Command::Backup { command } => backup(&cfg, command).await,
            Command::Health { within, record } => health(&cfg, within, record).await,
            Command::Console { once } => console(&cfg, once).await,
            Command::NetplanHelper { socket } => netplan_helper(&socket).await,
            Command::Hw {
                command: HwCommand::List { json },
            } => {
                use streambox::system::hardware;
                let found = hardware::with_vaapi(hardware::scan(
                    std::path::Path::new("/"),
                    &hardware::v4l2::probe,
                ));
                if json {
                    println!("{}", serde_json::to_string_pretty(&found)?);
                    return Ok(());
                }
                print!("{found}");
                if found.video.is_empty() {
                    println!("No video capture devices found.");
                }
                if found.gpus.is_empty() {
                    println!("No GPU found: ABR rungs encode on the CPU (OpenH264).");
                }
                Ok(())
            }
            Command::Hw {
                command: HwCommand::Vaapi { node },
            } => {
                let answer = streambox::system::hardware::vaapi::query(&node);
                println!("{}", serde_json::to_string(&answer)?);
                Ok(())
            }
        }
    });
    // Tasks still running (recorders between segments) end with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    if RESTART.load(std::sync::atomic::Ordering::SeqCst) {
        std::process::exit(streambox::app::RESTART_EXIT);
    }
    done
}

async fn open_db(cfg: &Config) -> anyhow::Result<sqlx::SqlitePool> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    Ok(db::open(&cfg.data_dir).await?)
}

/// [`open_db`] for a caller holding the data directory's lock ([`lock_data_dir`]): it
/// may return to the database copy kept before an update that was rolled back.
async fn open_db_locked(cfg: &Config) -> anyhow::Result<sqlx::SqlitePool> {
    Ok(db::open_locked(&cfg.data_dir).await?)
}

/// The lock `serve` holds on the data directory for as long as it runs, so a factory
/// reset cannot erase it under a running service.
fn lock_data_dir(cfg: &Config) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let path = cfg.data_dir.join("streambox.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        anyhow::anyhow!(
            "another streambox service is using {}; stop it first",
            cfg.data_dir.display()
        )
    })?;
    Ok(f)
}

/// `streambox health`.
async fn health(
    cfg: &Config,
    within: u64,
    record: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use streambox::system::update;
    let port = cfg.http.listen.port();
    let Err(reason) = update::probe(port, std::time::Duration::from_secs(within)).await else {
        println!("streambox answers on port {port}");
        return Ok(());
    };
    if let Some(file) = record {
        let failure = update::Failure {
            slot: update::booted_slot().unwrap_or_else(|| "unknown".into()),
            version: update::release().unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
            reason: reason.clone(),
            at_ms: streambox::manage::now_ms(),
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, failure.to_text())
            .and_then(|()| std::fs::rename(&tmp, &file))
            .with_context(|| format!("recording to {}", file.display()))?;
    }
    anyhow::bail!("{reason}")
}

/// `streambox backup create|restore`.
async fn backup(cfg: &Config, command: BackupCommand) -> anyhow::Result<()> {
    use streambox::backup;
    match command {
        BackupCommand::Create { out } => {
            let pool = open_db(cfg).await?;
            let (name, bytes) = backup::create(&pool, &cfg.data_dir, &cfg.tls_dir()).await?;
            pool.close().await;
            let path = out.unwrap_or_else(|| PathBuf::from(&name));
            if path.as_os_str() == "-" {
                std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
            } else {
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!(
                    "Backup written to {} ({} bytes).",
                    path.display(),
                    bytes.len()
                );
            }
            Ok(())
        }
        BackupCommand::Restore { file } => {
            let _lock = lock_data_dir(cfg)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let summary = backup::stage(&cfg.data_dir, &bytes, "cli", "cli").await?;
            backup::apply_staged(&cfg.data_dir, &cfg.tls_dir()).await?;
            let pool = open_db_locked(cfg).await?;
            db::audit(&pool, "cli", "backup.restore", &summary.appliance, "cli").await?;
            pool.close().await;
            println!(
                "Restored \"{}\" (made by streambox {}): {} user(s), {} stream(s), {} camera(s){}. \
                 The recordings on this box are kept; the replaced database is in {}.",
                summary.appliance,
                summary.version,
                summary.users,
                summary.streams,
                summary.cameras,
                if summary.certificate { ", and the HTTPS certificate" } else { "" },
                cfg.data_dir.join(backup::REPLACED).display()
            );
            Ok(())
        }
    }
}

/// `streambox reset --factory`: after confirmation, deletes the database and the
/// recordings; the next `serve` starts the setup wizard afresh.
fn factory_reset(cfg: &Config, yes: bool) -> anyhow::Result<()> {
    let dir = &cfg.data_dir;
    if !dir.exists() {
        println!("Nothing to reset: {} does not exist.", dir.display());
        return Ok(());
    }
    let _lock = lock_data_dir(cfg)?;
    if !yes {
        println!(
            "This erases every user, stream and stream key, camera, setting, the audit log and ALL RECORDINGS in {}.",
            dir.display()
        );
        print!("Type \"reset\" to go on: ");
        std::io::Write::flush(&mut std::io::stdout())?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "reset" {
            anyhow::bail!("not confirmed; nothing was erased");
        }
    }
    for name in ["streambox.db", "streambox.db-wal", "streambox.db-shm"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {name}")),
        }
    }
    // The recordings, and every other copy of the database (a staged restore, the one
    // a restore replaced, the copies kept across schema changes).
    for folder in [
        "recordings",
        streambox::backup::STAGED,
        streambox::backup::REPLACED,
        streambox::db::SCHEMA_COPIES,
    ] {
        let path = dir.join(folder);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    println!("Factory reset done. Start the service and open it in a browser to run setup again.");
    Ok(())
}

async fn serve(mut cfg: Config) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&cfg)?;
    // A restore staged before the last stop takes its place now, before the database
    // is opened.
    let restored = streambox::backup::apply_staged(&cfg.data_dir, &cfg.tls_dir())
        .await
        .context("putting the restored configuration in place")?;
    if let Some(r) = &restored {
        info!(
            appliance = %r.appliance,
            made_by = %r.version,
            users = r.users,
            streams = r.streams,
            cameras = r.cameras,
            "configuration restored from a backup"
        );
    }
    let pool = open_db_locked(&cfg).await?;
    if let Some(r) = &restored {
        // In the restored database's log, as whoever restored it.
        db::audit(&pool, &r.by, "backup.restore", &r.appliance, &r.client).await?;
    }
    let rtmp =
        listen(cfg.rtmp.listen).with_context(|| format!("binding RTMP to {}", cfg.rtmp.listen))?;
    let web =
        listen(cfg.http.listen).with_context(|| format!("binding HTTP to {}", cfg.http.listen))?;
    let rtsp =
        listen(cfg.rtsp.listen).with_context(|| format!("binding RTSP to {}", cfg.rtsp.listen))?;
    let https = bind_if(cfg.http.tls_listen, "HTTPS")?;
    let metrics = bind_if(cfg.metrics.listen, "metrics")?;
    let (rtmp_addr, http_addr, rtsp_addr) =
        (rtmp.local_addr()?, web.local_addr()?, rtsp.local_addr()?);
    info!(data_dir = %cfg.data_dir.display(), "streambox starting");
    // Machine-readable lines on stdout, for scripts and tests using port 0.
    println!("rtmp listening on {rtmp_addr}");
    println!("http listening on {http_addr}");
    println!("rtsp listening on {rtsp_addr}");
    if let Some(m) = &metrics {
        println!("metrics listening on {}", m.local_addr()?);
    }
    let tls = match &https {
        Some(l) => {
            let addr = l.local_addr()?;
            let tls = tls_identity(&cfg)?;
            println!("https listening on {addr}");
            println!("https certificate sha256 {}", tls.fingerprint());
            cfg.http.tls_listen = Some(addr);
            Some(tls.server_config()?)
        }
        None => None,
    };
    // Pages that show addresses (setup, publish settings) use the bound ports.
    (cfg.rtmp.listen, cfg.http.listen, cfg.rtsp.listen) = (rtmp_addr, http_addr, rtsp_addr);
    if let Some(fault) = cfg
        .data_fault_file
        .as_deref()
        .and_then(streambox::system::storage::data_fault)
    {
        tracing::error!(%fault, "the data partition could not be used; running on a stand-in");
        streambox_web::set_fault(Some(format!(
            "The data partition could not be used: {fault} Until it is repaired, what is set \
             up and recorded now is kept only until the next restart."
        )));
    }
    let budget = cfg.abr.budget();
    let watcher = db::watcher(&cfg.data_dir).await?;
    let app = App::new(cfg, pool);
    {
        let hw = app.hardware.borrow();
        tracing::info!(
            video = hw.video.len(),
            sound = hw.sound.len(),
            gpus = hw.gpus.len(),
            "hardware found (ABR rungs encode on the CPU for now)"
        );
    }
    app.registry
        .refresh()
        .await
        .context("reading the configured streams")?;
    tokio::spawn(app.registry.clone().watch(watcher));
    app.keyring
        .reload()
        .await
        .context("reading the content keys")?;
    // A deleted stream's keys go from memory with it (its rows went in its deletion).
    let (keyring, registry) = (app.keyring.clone(), app.registry.clone());
    tokio::spawn(async move {
        let mut changes = registry.changes();
        while changes.changed().await.is_ok() {
            let dir = registry.directory();
            keyring.retain(|uid| dir.by_uid(uid).is_some());
        }
    });
    // Who may open the admin pages is checked from memory on every request.
    app.vpn.load().await.context("reading the VPN's settings")?;
    let vpn = app.vpn.clone();
    tokio::spawn(async move { vpn.apply_saved().await });
    // A network change on trial when the service or the box stopped ends as an
    // unconfirmed one does: the previous settings come back.
    let network = app.network.clone();
    tokio::spawn(async move {
        if let Err(e) = network.recover().await {
            tracing::error!(error = %e, "reading the network trial failed");
        }
        // Read the configuration once now, so the first page that shows it (the
        // wizard's network step) does not wait for netplan.
        let _ = network.configured().await;
    });
    // How an update installed before this boot ended (kept, or rolled back).
    tokio::spawn(app.updates.clone().after_boot());
    // IPv6 address registration with a directory, when the admin has set one up.
    tokio::spawn(app.registration.clone().run(app.interfaces.clone()));
    // The time zone list, read once, so the setup pages never read it on a worker.
    tokio::task::spawn_blocking(streambox::system::zones::list);
    // Measure what transcoding costs on this machine, off the async workers; ladders
    // started before it finishes use the built-in estimate.
    let costs = app.costs.clone();
    tokio::task::spawn_blocking(move || match streambox::transcode::cost::calibrate() {
        Ok((decode, encode)) => {
            costs.set(decode, encode);
            tracing::info!(
                decode = format!("{decode:.5}"),
                encode = format!("{:.5}/{:.5}/{:.5}", encode[0], encode[1], encode[2]),
                budget_cores = format!("{:.2}", budget),
                "ABR cost model calibrated (CPU-s per media-s per Mpx/s)"
            );
        }
        Err(e) => tracing::warn!(error = %e, "ABR calibration failed; using the built-in estimate"),
    });
    // Recordings and their index agree before anything records.
    dvr::reconcile(&app.dvr)
        .await
        .context("reconciling recordings with their index")?;
    tokio::spawn(dvr::retain(app.dvr.clone(), app.registry.clone()));
    tokio::spawn(ingest::rtmp::serve(rtmp, app.clone()));
    tokio::spawn(streambox::rtsp::server::serve(rtsp, app.clone()));
    tokio::spawn(ingest::rtsp_pull::run(app.clone()));
    tokio::spawn(ingest::capture::run(app.clone()));
    tokio::spawn(sweep(app.db.clone()));
    if let Some(m) = metrics {
        tokio::spawn(http::serve_metrics(m, app.clone()));
    }
    // One signal (or a restore's restart) stops both web listeners; each lets its
    // requests in flight finish.
    let lifecycle = app.lifecycle.clone();
    let stop = lifecycle.stop.clone();
    let secure = match (https, tls) {
        (Some(listener), Some(tls)) => Some(tokio::spawn(http::serve_tls(
            listener,
            app.clone(),
            tls,
            stop.clone().cancelled_owned(),
        ))),
        _ => None,
    };
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown().await;
        signal.cancel();
    });
    http::serve(web, app, stop.cancelled_owned()).await;
    if let Some(s) = secure {
        let _ = s.await;
    }
    if lifecycle.restarting() {
        info!("streambox stopped to start again (a restored configuration)");
        RESTART.store(true, std::sync::atomic::Ordering::SeqCst);
    } else {
        info!("streambox stopped");
    }
    Ok(())
}

/// Set when `serve` stopped to be started again: `main` then exits with
/// [`streambox::app::RESTART_EXIT`], once the runtime has wound down.
static RESTART: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints the console banner, and again (after clearing a terminal) whenever it
/// changes; checks every 2 s.
async fn netplan_helper(socket: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(socket).with_context(|| format!("removing {}", socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    // The box's own name over mDNS, taken back when avahi gives it up spuriously.
    tokio::spawn(streambox::system::hostname::keep_mdns_name(
        std::path::PathBuf::from(streambox::system::hostname::STATE_FILE),
    ));
    // The VPN as it was last set up (at boot: the kernel has forgotten it).
    let vpn = streambox::system::wireguard::STATE_DIR;
    streambox::system::wireguard::restore(std::path::Path::new(vpn)).await;
    tracing::info!(socket = %socket.display(), "network helper listening");
    streambox::system::netplan_helper::serve(listener).await;
    Ok(())
}

async fn console(cfg: &Config, once: bool) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let tls_dir = cfg.tls_dir();
    let mut shown = String::new();
    loop {
        let host = host_name(cfg);
        let interfaces = streambox::system::network::interfaces().unwrap_or_default();
        let fingerprint = cfg
            .http
            .tls_listen
            .and_then(|_| streambox::tls::fingerprint_in(&tls_dir));
        let fault = cfg
            .data_fault_file
            .as_deref()
            .and_then(streambox::system::storage::data_fault);
        let notice =
            std::fs::read_to_string(cfg.data_dir.join(streambox::manage::update::NOTICE_FILE))
                .ok()
                .filter(|t| !t.trim().is_empty());
        let text = streambox::system::console::banner(&streambox::system::console::Facts {
            fault: fault.as_deref(),
            notice: notice.as_deref().map(str::trim),
            version: env!("CARGO_PKG_VERSION"),
            host: &host,
            https_port: cfg.http.tls_listen.map(|a| a.port()),
            http_port: cfg.http.listen.port(),
            interfaces: &interfaces,
            fingerprint: fingerprint.as_deref(),
        });
        if text != shown {
            let mut out = std::io::stdout().lock();
            if out.is_terminal() {
                write!(out, "\x1b[H\x1b[2J")?;
            } else {
                writeln!(out, "----")?;
            }
            write!(out, "{text}")?;
            out.flush()?;
            shown = text;
        }
        if once {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The HTTPS certificate and key in `http.tls_dir` (or `DATA_DIR/tls`), made at the
/// first start for this machine's name and addresses.
fn tls_identity(cfg: &Config) -> anyhow::Result<streambox::tls::Identity> {
    let dir = cfg.tls_dir();
    let addrs: Vec<std::net::IpAddr> = streambox::system::network::interfaces()
        .unwrap_or_default()
        .iter()
        .flat_map(|i| i.addresses.iter().map(|a| a.ip))
        .collect();
    let id = streambox::tls::load_or_create(&dir, &host_name(cfg), &addrs)
        .context("the HTTPS certificate")?;
    if id.created {
        info!(dir = %dir.display(), fingerprint = %id.fingerprint(), "made a self-signed HTTPS certificate");
    }
    Ok(id)
}

/// Connections the kernel queues for a listener before it accepts them (`listen(2)`'s
/// backlog; the kernel caps it at `net.core.somaxconn`, 4096 by default). The default of
/// 128 overflowed when a thousand viewers connected at once: the kernel dropped the
/// handshakes it had no room for, and those clients waited on connections the server
/// never saw.
const BACKLOG: u32 = 4096;

/// A TCP listener on `addr` (`SO_REUSEADDR`, as the standard library sets it) with a
/// backlog of [`BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A listener on `addr` when it is configured.
fn bind_if(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some(a) => Ok(Some(
            listen(a).with_context(|| format!("binding {what} to {a}"))?,
        )),
        None => Ok(None),
    }
}

/// Deletes timed-out sessions and expired viewer links once an hour.
async fn sweep(pool: sqlx::SqlitePool) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match streambox::auth::sessions::sweep(&pool).await {
            Ok(0) => {}
            Ok(n) => info!(sessions = n, "timed-out sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting timed-out sessions failed"),
        }
        match streambox::auth::viewer::sweep(&pool).await {
            Ok(0) => {}
            Ok(n) => info!(links = n, "expired viewer links deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting expired viewer links failed"),
        }
    }
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn host_name(cfg: &Config) -> String {
    cfg.public_host
        .clone()
        .unwrap_or_else(streambox::system::network::host_name)
}

async fn stream(cfg: Config, command: StreamCommand) -> anyhow::Result<()> {
    let pool = open_db(&cfg).await?;
    let cfg = std::sync::Arc::new(cfg);
    let ops = Ops::cli(pool.clone(), cfg.clone());
    match command {
        StreamCommand::Add { name } => {
            let (name, key) = manage::streams::add(&ops, &name).await?;
            println!("Created stream {name}.");
            print_key(&cfg, &name, &key);
        }
        StreamCommand::List => {
            let rows = stream_keys::list(&pool).await?;
            if rows.is_empty() {
                println!("No streams. Create one with: streambox stream add NAME");
            }
            for r in rows {
                println!(
                    "{}\tcreated {}\tkey rotated {}",
                    r.name,
                    utc(r.created_at),
                    utc(r.key_rotated_at)
                );
            }
        }
        StreamCommand::Rm { name } => {
            expect_kind(&ops, &name, Kind::Stream, "stream").await?;
            manage::streams::remove(&ops, &name).await?;
            println!("Deleted stream {name}, its viewer links and its recordings.");
        }
        StreamCommand::Set {
            name,
            record,
            keep,
            keep_bytes,
            ladder,
            quality,
            encrypt,
            rotate,
        } => {
            if let Some(l) = &ladder {
                // Checked before anything changes.
                l.parse::<streambox::transcode::ladder::Ladder>()
                    .map_err(|e| anyhow::anyhow!("--ladder: {e}"))?;
            }
            let change = manage::streams::RecordingChange {
                enabled: record.as_deref().map(|r| r == "on"),
                keep: keep.as_deref(),
                keep_bytes: keep_bytes.as_deref(),
            };
            let s = if record.is_some() || keep.is_some() || keep_bytes.is_some() {
                manage::streams::set_recording(&ops, &name, change).await?
            } else {
                dvr_settings::get(&pool, &ops.named(&name).await?.uid).await?
            };
            if ladder.is_some() || quality.is_some() {
                manage::streams::set_ladder(&ops, &name, ladder.as_deref(), quality.as_deref())
                    .await?;
            }
            if let Some(e) = &encrypt {
                let rotate = rotate.as_deref().unwrap_or("10m");
                manage::streams::set_protection(&ops, &name, e == "on", rotate).await?;
            }
            let protection = match ops.named(&name).await?.protection {
                None => "clear".to_string(),
                Some(streambox::streams::Protection { rotate_secs: None }) => {
                    "encrypted (key rotated at each session)".into()
                }
                Some(streambox::streams::Protection {
                    rotate_secs: Some(s),
                }) => format!(
                    "encrypted (key rotated every {})",
                    humantime::format_duration(std::time::Duration::from_secs(u64::from(s)))
                ),
            };
            let uid = named_uid(&pool, &name).await?;
            let abr = streambox::transcode::ladder::get(&pool, &uid).await?;
            let keep = s.keep_secs.map_or("no age limit".into(), |k| {
                humantime::format_duration(std::time::Duration::from_secs(k as u64)).to_string()
            });
            let bytes = s.keep_bytes.map_or("no size limit".into(), |b| {
                bytesize::ByteSize(b as u64).to_string()
            });
            println!(
                "{name}: recording {}, keep {keep}, {bytes}; ladder {} ({} quality); {protection}",
                if s.enabled { "on" } else { "off" },
                abr.ladder,
                abr.quality
            );
        }
        StreamCommand::RotateKey { name } => {
            expect_kind(&ops, &name, Kind::Stream, "stream").await?;
            let key = manage::streams::rotate_key(&ops, &name).await?;
            println!("New key for stream {name}; the old key no longer works.");
            print_key(&cfg, &name, &key);
        }
    }
    Ok(())
}

async fn dvr_command(cfg: Config, command: DvrCommand) -> anyhow::Result<()> {
    let pool = open_db(&cfg).await?;
    match command {
        DvrCommand::Ranges { name } => {
            let ranges = dvr::ranges(&pool, &named_uid(&pool, &name).await?, None).await?;
            if ranges.is_empty() {
                println!("No recordings of {name}.");
            }
            let ms = |t: i64| utc_ms(t);
            let mut last_end = None;
            for r in ranges {
                if let Some(end) = last_end {
                    println!(
                        "gap\t{}\t{}\t{:.1} s",
                        ms(end),
                        ms(r.start_ms),
                        (r.start_ms - end) as f64 / 1000.0
                    );
                }
                println!(
                    "range\t{}\t{}\t{:.1} s\t{} segments",
                    ms(r.start_ms),
                    ms(r.end_ms),
                    (r.end_ms - r.start_ms) as f64 / 1000.0,
                    r.segments
                );
                last_end = Some(r.end_ms);
            }
        }
        DvrCommand::Export {
            name,
            from,
            to,
            output,
        } => {
            let range = dvr::playback::parse_range(Some(&from), Some(&to))?;
            let uid = named_uid(&pool, &name).await?;
            let (video, audio) = dvr::playback::segments(&pool, &uid, range).await?;
            let root = cfg.data_dir.join("recordings");
            let out = output.clone();
            let (seconds, bytes) =
                tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, u64)> {
                    let plan = dvr::export::plan(&root, &video, &audio, range)?;
                    // Written beside the target and renamed: never a half file under its name.
                    let mut tmp = out.clone().into_os_string();
                    tmp.push(".part");
                    let tmp = PathBuf::from(tmp);
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(&tmp)
                            .with_context(|| format!("creating {}", tmp.display()))?,
                    );
                    plan.write_to(&mut f)?;
                    std::io::Write::flush(&mut f)?;
                    std::fs::rename(&tmp, &out)?;
                    Ok((plan.seconds, plan.len()))
                })
                .await??;
            println!("Wrote {}: {seconds:.1} s, {bytes} bytes.", output.display());
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC time with milliseconds.
fn utc_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

async fn source(cfg: Config, command: SourceCommand) -> anyhow::Result<()> {
    let pool = open_db(&cfg).await?;
    let cfg = std::sync::Arc::new(cfg);
    let ops = Ops::cli(pool.clone(), cfg.clone());
    match command {
        SourceCommand::Add {
            name,
            url: None,
            device: Some(device),
            size,
            fps,
            bitrate,
            audio,
            ..
        } => {
            let input = manage::capture::CaptureInput {
                name: &name,
                device: &device,
                size: size.as_deref().unwrap_or(""),
                fps: fps.as_deref().unwrap_or(""),
                bitrate: bitrate.as_deref().unwrap_or(""),
                audio: audio.as_deref().unwrap_or(""),
            };
            let hardware = tokio::task::spawn_blocking(|| {
                streambox::system::hardware::scan(
                    std::path::Path::new("/"),
                    &streambox::system::hardware::v4l2::probe,
                )
            })
            .await?;
            let (name, message) = manage::capture::save(&ops, &input, &hardware, None).await?;
            println!("{message}");
            print_watch_urls(&cfg, &name);
        }
        SourceCommand::Add {
            name,
            url,
            transport,
            ..
        } => {
            let url = url.unwrap_or_default();
            let camera = manage::cameras::CameraInput {
                name: &name,
                url: &url,
                transport: &transport,
                ..Default::default()
            };
            let (name, _) = manage::cameras::save(&ops, &camera, None).await?;
            let row = sources::list(&pool)
                .await?
                .into_iter()
                .find(|r| r.name == name)
                .ok_or_else(|| anyhow::anyhow!("camera {name:?} was removed meanwhile"))?;
            println!(
                "Added camera {name}: {} over {}.",
                row.display_url(),
                row.transport
            );
            print_watch_urls(&cfg, &name);
        }
        SourceCommand::List => {
            let rows = sources::list(&pool).await?;
            if rows.is_empty() {
                println!(
                    "No cameras. Add one with: streambox source add NAME rtsp://…, or a capture \
                     device with: streambox source add NAME --device ID (from streambox hw list)"
                );
            }
            let now = db::unix_now();
            for r in rows {
                let uptime = match (r.state.as_str(), r.live_since) {
                    ("live", Some(t)) => format!("up {}s", (now - t).max(0)),
                    _ => "-".into(),
                };
                let error = if r.last_error.is_empty() {
                    "-".to_string()
                } else {
                    r.last_error.clone()
                };
                let how = if r.is_capture() {
                    let dropped = format!("{} frames dropped", r.dropped);
                    match r.detail.as_str() {
                        "" => dropped,
                        d => format!("{d}; {dropped}"),
                    }
                } else {
                    r.transport.clone()
                };
                println!(
                    "{}\t{}\t{}\t{}\t{} kbit/s\t{}\tlast error: {}",
                    r.name,
                    r.display_url(),
                    how,
                    r.state,
                    r.bitrate / 1000,
                    uptime,
                    error
                );
            }
        }
        SourceCommand::Rm { name } => {
            expect_kind(&ops, &name, Kind::Camera, "source").await?;
            manage::streams::remove(&ops, &name).await?;
            println!("Removed camera {name}, its viewer links and its recordings.");
        }
    }
    Ok(())
}

/// Fails with `no WORD named NAME` unless `name` is a stream or camera of `kind`.
async fn expect_kind(ops: &Ops, name: &str, kind: Kind, word: &str) -> anyhow::Result<()> {
    match ops.named(name).await {
        Ok(n) if n.kind == kind => Ok(()),
        Ok(_) | Err(manage::Refused::NotFound(_)) => anyhow::bail!("no {word} named {name:?}"),
        Err(e) => Err(e.into()),
    }
}

/// The identity of stream or camera `name`.
async fn named_uid(
    pool: &sqlx::SqlitePool,
    name: &str,
) -> anyhow::Result<streambox::streams::StreamUid> {
    streambox::streams::lookup(pool, name)
        .await?
        .map(|n| n.uid)
        .ok_or_else(|| anyhow::anyhow!("no stream or camera named {name:?}"))
}

/// Seconds since the Unix epoch as an RFC 3339 UTC time.
fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn print_key(cfg: &Config, name: &str, key: &str) {
    println!("Stream key (shown only once): {key}");
    println!();
    println!("OBS settings:");
    println!(
        "  Server:     {}",
        manage::addresses::rtmp_url(&host_name(cfg), cfg.rtmp.listen.port())
    );
    println!("  Stream Key: {key}");
    println!();
    print_watch_urls(cfg, name);
}

fn print_watch_urls(cfg: &Config, name: &str) {
    let host = host_name(cfg);
    let http = match cfg.http.listen.port() {
        80 => String::new(),
        p => format!(":{p}"),
    };
    let rtsp = match cfg.rtsp.listen.port() {
        554 => String::new(),
        p => format!(":{p}"),
    };
    println!("Watch:");
    println!("  HLS:  http://{host}{http}/live/{name}/index.m3u8");
    println!("  DASH: http://{host}{http}/live/{name}/manifest.mpd");
    println!("  RTSP: rtsp://{host}{rtsp}/live/{name}");
}
