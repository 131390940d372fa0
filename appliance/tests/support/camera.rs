//! A real RTSP camera for the tests: GStreamer's RTSP server (`camera.py`, run by the
//! distribution's python3 with python3-gi and gir1.2-gst-rtsp-server-1.0).

use super::{derived_clip_with, x264_2s_gops};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The distribution's python3 (GObject introspection is installed for it, not for
/// other interpreters on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// 32 s of bigbuckbunny as a camera would send it: 640x360 H.264 Main at 25 fps with a
/// keyframe every 2 s and no B-frames, and stereo AAC.
pub fn camera_clip() -> PathBuf {
    let mut args = vec!["-t", "32", "-s", "640x360", "-profile:v", "main"];
    args.extend(x264_2s_gops("0", "96k"));
    args.extend(["-f", "mp4"]);
    derived_clip_with("camera-v1.mp4", &["-stream_loop", "5"], &args)
}

/// A running camera, killed on drop.
pub struct Camera {
    child: Child,
    /// The port it serves RTSP on.
    pub port: u16,
    output: Arc<Mutex<String>>,
}

impl Camera {
    /// Starts a camera serving `clip` with `audio` (`aac` or `pcma`) on `port` (0 for any),
    /// with authentication when `auth` (user, password, `digest` or `basic`) is given.
    pub fn start(clip: &Path, audio: &str, port: u16, auth: Option<(&str, &str, &str)>) -> Camera {
        assert!(
            Path::new(PYTHON).is_file(),
            "{PYTHON} is required for the camera tests; run tests/run.sh, which installs it"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/camera.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script).arg(clip).arg(audio).arg(port.to_string());
        if let Some((user, password, method)) = auth {
            cmd.args([user, password, method]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start camera.py");
        let stdout = child.stdout.take().expect("stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("camera listening on ") {
                    let _ = tx.send(p.parse::<u16>().ok());
                }
                let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
                out.push_str(&line);
                out.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Camera {
                child,
                port,
                output,
            },
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("camera output");
                panic!(
                    "the GStreamer camera did not start (needs python3-gi, gir1.2-gst-rtsp-server-1.0; run tests/run.sh): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// `rtsp://[user:password@]127.0.0.1:PORT/stream1`.
    pub fn url(&self, auth: Option<(&str, &str)>) -> String {
        match auth {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}/stream1", self.port),
            None => format!("rtsp://127.0.0.1:{}/stream1", self.port),
        }
    }

    /// Waits until the camera has printed `needle` (e.g. `TEARDOWN`); false on timeout.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .output
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(needle)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
