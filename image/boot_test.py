#!/usr/bin/env python3
"""Boots the test flavour of the appliance image under QEMU and checks it as a user and an
installer would, from the host and (through the QEMU guest agent, which only the test
flavour has) from inside. Run by image/test.sh after image/build.sh; prints each check
with the figures it measured and exits non-zero on the first failure.

Usage: boot_test.py OUT_DIR   (OUT_DIR holds streambox-VERSION-amd64.img from build.sh)
"""

import base64
import datetime
import glob
import hashlib
import http.client
import http.server
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
DISK_SIZE = 6 * 1024**3  # the disk the image is "flashed" to: larger than the image
BOOT_LIMIT = 60.0  # seconds from power-on to the wizard over HTTPS (issue 16)
LAN2_MAC = "52:54:00:76:00:01"
LAN2_STATIC = "192.168.76.20"  # the static address confirmed, kept across a reboot
LAN2_TRIAL = "192.168.76.21"  # the one tried and not confirmed
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(REPO, "..", "shared", "media", "bigbuckbunny.mp4")


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# A console silent this long in the firmware or in a kernel before its initramfs is a
# hung boot ([`Vm._early_hang_watchdog`]); a real boot prints within seconds there.
EARLY_HANG_S = 120


def console_since(path, offset):
    """What a console log holds from byte `offset` on."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


class Vm:
    """One QEMU machine on a copy-on-write disk over the image, with its UEFI variables
    and forwarded ports kept across boots."""

    def __init__(self, image, work):
        self.work = work
        self.disk = os.path.join(work, "disk.qcow2")
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", image, "-F", "raw",
             self.disk, str(DISK_SIZE)],
            check=True,
        )
        self.vars = os.path.join(work, "OVMF_VARS.fd")
        shutil.copy(OVMF_VARS, self.vars)
        # Guest ports forwarded from the host; 9000 is not in the firewall's list.
        self.port = {p: free_port() for p in (80, 443, 1935, 8554, 9000)}
        # HTTPS at the static addresses the network test gives the second NIC.
        self.lan2 = {a: free_port() for a in (LAN2_STATIC, LAN2_TRIAL)}
        self.boots = 0
        self.proc = None
        # Set while the watchdog power-cycles the machine ([`Vm._early_hang_watchdog`]).
        self.cycling = False
        self.stick, self.stick_plugged = None, False

    def start(self, stick=None):
        """Powers on; with `stick` (a disk image), the stick's drive is there to plug
        into the USB controller later ([`Vm.plug_stick`])."""
        self.boots += 1
        self.stick, self.stick_plugged = stick, False
        self.console = os.path.join(self.work, f"console-{self.boots}.log")
        self.qga_path = os.path.join(self.work, "qga.sock")
        if os.path.exists(self.qga_path):
            os.unlink(self.qga_path)
        fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in self.port.items())
        cmd = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "2048",
            "-smp", "2", "-display", "none", "-monitor", "none",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={self.vars}",
            "-drive", f"file={self.disk},if=virtio,format=qcow2",
            "-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            # A second LAN (DHCP and router advertisements from QEMU at .2), reached
            # from the host only at the static addresses the network test sets.
            "-netdev", "user,id=n1,net=192.168.76.0/24,ipv6-net=fd00:76::/64,"
            + ",".join(f"hostfwd=tcp:127.0.0.1:{h}-{a}:443" for a, h in self.lan2.items()),
            "-device", f"virtio-net-pci,netdev=n1,mac={LAN2_MAC}",
            # A hardware random number generator, as every real box has (RDRAND, which
            # TCG's default CPU lacks, or a TPM): without one the kernel's CRNG waits for
            # interrupt jitter, and the first boot's certificate waits for the CRNG.
            "-device", "virtio-rng-pci",
            # The chipset's watchdog resets the machine when it fires, as a real board's
            # does: the image arms it across every reboot (RebootWatchdogSec), so a
            # reboot that hangs in the firmware (seen once under TCG) ends by itself.
            "-global", "ICH9-LPC.noreboot=false",
            "-serial", f"file:{self.console}",
            "-chardev", f"socket,path={self.qga_path},server=on,wait=off,id=qga0",
            "-device", "virtio-serial",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]
        # A USB controller at a fixed address on every boot, as a board has: a device
        # that appears in between moves the disk's PCI address, and the firmware's boot
        # entry for it with it.
        self.qmp_path = os.path.join(self.work, "qmp.sock")
        cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-device", "qemu-xhci,id=xhci,addr=0x10"]
        if stick:
            cmd += ["-drive", f"if=none,id=stick,format=raw,readonly=on,file={stick}"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._early_hang_watchdog, args=(self.proc, self.console),
                         daemon=True).start()

    def exited(self):
        """QEMU has ended (not while the watchdog power-cycles it)."""
        proc = self.proc
        return proc.poll() is not None and not self.cycling and proc is self.proc

    def _early_hang_watchdog(self, proc, console):
        """Resets the machine through QMP, as a board's watchdog would, when its console
        has stopped for EARLY_HANG_S in the firmware or in a kernel's boot before it
        runs its initramfs. QEMU's TCG now and then leaves the vCPUs spinning there for good
        after a warm reset, which no board does (seen in CI: once in the firmware, once
        right after the kernel switched to the HPET clocksource, with QEMU at 160 % CPU
        for 17 minutes, once at "reboot: machine restart"). When the reset does not
        bring the console back either (the last case: nine resets, nothing), the
        machine is powered off and on again on the same disks, as pulling a board's
        plug would. Boot counting sees the hung boot as a failed attempt either way;
        the log says when this happens."""
        size, since, resets, reset_at = -1, time.monotonic(), 0, 0
        while proc.poll() is None:
            time.sleep(5)
            try:
                now = os.path.getsize(console)
            except OSError:
                continue
            if now != size:
                size, since = now, time.monotonic()
                # A reset that brought the guest as far as its initramfs worked.
                if resets and b"Run /init" in console_since(console, reset_at):
                    resets = 0
                continue
            if time.monotonic() - since < EARLY_HANG_S:
                continue
            text = self.console_text()
            lines = [l for l in text.splitlines() if l.strip()]
            last = lines[-1] if lines else ""
            # In the firmware, or in a kernel that has not started its initramfs yet.
            kernel = text.rsplit("Linux version", 1)
            early = ("BdsDxe" in last or "EFI stub" in last or "machine restart" in last
                     or (len(kernel) == 2 and "Run /init" not in kernel[1]))
            if not early or proc.poll() is not None:
                continue
            if resets >= 1:
                print(f"boot: the reset did not bring the guest back in {EARLY_HANG_S} s, at "
                      f"{last.strip()!r}: power off and on again on the same disks", flush=True)
                self._power_cycle(proc)
                return
            print(f"boot: the guest hung early in its boot for {EARLY_HANG_S} s (QEMU TCG), "
                  f"at {last.strip()!r}: reset, as a board's watchdog would", flush=True)
            try:
                self.qmp("system_reset")
            except (OSError, Failed, ValueError) as e:
                print(f"boot: the reset failed: {e}", flush=True)
            resets += 1
            reset_at, size, since = now, -1, time.monotonic()

    def _power_cycle(self, proc):
        """Ends the QEMU process `proc` and starts the machine again (a new console log,
        the same disks, UEFI variables and ports, the USB stick plugged in again if it
        was)."""
        if proc is not self.proc:
            return
        self.cycling = True
        try:
            # QMP's quit ends QEMU with its disk caches written, as the power cut finds
            # them; a QEMU that does not answer is killed.
            try:
                self.qmp("quit")
            except (OSError, Failed, ValueError):
                pass  # QEMU may close the socket before it answers
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            plugged = self.stick_plugged
            self.start(stick=self.stick)
            if plugged:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        self.plug_stick()
                        break
                    except (OSError, Failed, ValueError):
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(1)
        finally:
            self.cycling = False

    def qmp(self, command, arguments=None):
        """One QMP command to QEMU itself (the machine's front panel); its answer."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.qmp_path)
        f = s.makefile("rw")
        json.loads(f.readline())  # the greeting
        for msg in ({"execute": "qmp_capabilities"},
                    {"execute": command, **({"arguments": arguments} if arguments else {})}):
            f.write(json.dumps(msg) + "\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "return" in r or "error" in r:
                    break
        s.close()
        if "error" in r:
            raise Failed(f"QMP {command}: {r['error']}")
        return r["return"]

    def plug_stick(self):
        """Plugs the USB stick [`Vm.start`] was given into the running machine."""
        self.qmp("device_add", {"driver": "usb-storage", "drive": "stick", "id": "stick0",
                                "bus": "xhci.0"})
        self.stick_plugged = True

    def console_text(self):
        return console_since(self.console, 0).decode("utf-8", "replace").replace("\r", "")

    def qga(self, command, arguments=None, timeout=30):
        """One guest agent command; its "return" value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(max(1.0, deadline - time.monotonic()))
                s.connect(self.qga_path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failed("the guest agent socket did not open")
                time.sleep(0.5)
        with s:
            f = s.makefile("rwb")
            sync = int(time.time() * 1000) % 1000000
            f.write(json.dumps({"execute": "guest-sync", "arguments": {"id": sync}}).encode() + b"\n")
            f.flush()
            while json.loads(f.readline()).get("return") != sync:
                pass
            msg = {"execute": command}
            if arguments is not None:
                msg["arguments"] = arguments
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            answer = json.loads(f.readline())
        if "error" in answer:
            raise Failed(f"guest agent {command}: {answer['error']}")
        return answer.get("return")

    def wait_agent(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.qga("guest-ping", timeout=5)
                return
            except (Failed, OSError, ValueError):
                time.sleep(1)
        raise Failed("the guest agent never answered")

    def run(self, argv, timeout=60, check_rc=True):
        """Runs argv inside the guest; (exit code, stdout, stderr)."""
        pid = self.qga("guest-exec", {"path": argv[0], "arg": argv[1:], "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.qga("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                out = base64.b64decode(st.get("out-data", "")).decode("utf-8", "replace")
                err = base64.b64decode(st.get("err-data", "")).decode("utf-8", "replace")
                rc = st.get("exitcode", -1)
                if check_rc and rc != 0:
                    raise Failed(f"in the guest, {argv} exited {rc}: {out}{err}")
                return rc, out, err
            time.sleep(0.3)
        raise Failed(f"in the guest, {argv} did not finish in {timeout} s")

    def spawn(self, argv):
        """Starts argv inside the guest without waiting for it; its pid."""
        return self.qga("guest-exec", {"path": argv[0], "arg": argv[1:]})["pid"]

    def wait_exit(self, pid, timeout):
        """Waits for a process `spawn` started to end."""
        deadline = time.monotonic() + timeout
        while not self.qga("guest-exec-status", {"pid": pid}).get("exited"):
            if time.monotonic() > deadline:
                raise Failed(f"in the guest, pid {pid} did not end in {timeout} s")
            time.sleep(0.3)

    def shutdown(self, timeout=120):
        try:
            self.qga("guest-shutdown", {"mode": "powerdown"}, timeout=10)
        except (Failed, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failed(f"the guest did not power off within {timeout} s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Browser:
    """A minimal browser over http.client: cookies, no redirects followed, and the
    certificate the server presented (any certificate is taken, as a user accepting a
    self-signed one does; its fingerprint is what the test compares)."""

    def __init__(self):
        self.cookies = {}
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.peer_der = None

    def request(self, method, url, fields=None, timeout=30, json_body=None, headers=None, raw=False):
        u = urllib.parse.urlsplit(url)
        if u.scheme == "https":
            c = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=self.ctx)
        else:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if json_body is not None:
            body = json.dumps(json_body)
            headers["Content-Type"] = "application/json"
        path = u.path + (f"?{u.query}" if u.query else "")
        c.request(method, path, body=body, headers=headers)
        if u.scheme == "https":
            self.peer_der = c.sock.getpeercert(binary_form=True)
        r = c.getresponse()
        data = r.read()
        if not raw:
            data = data.decode("utf-8", "replace")
        for h in r.headers.get_all("Set-Cookie") or []:
            k, v = h.split(";", 1)[0].split("=", 1)
            self.cookies[k.strip()] = v.strip()
        c.close()
        return r.status, r.headers, data


def fingerprint(der):
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def banner_fingerprint(console):
    """The last fingerprint the console banner showed."""
    lines = console.splitlines()
    found = None
    for i, line in enumerate(lines):
        if line.startswith("Certificate SHA-256 fingerprint"):
            found = ":".join(l.strip() for l in lines[i + 1:i + 3])
    return found


def wait_wizard(vm, browser, limit, path="/setup"):
    """Seconds from QEMU's start to the wizard (or `path`) answering 200 over HTTPS."""
    url = f"https://127.0.0.1:{vm.port[443]}{path}"
    while time.monotonic() - vm.started < limit:
        if vm.exited():
            raise Failed(f"QEMU exited: {vm.proc.stderr.read().decode()}")
        try:
            status, _, body = browser.request("GET", url, timeout=5)
            if status == 200:
                return time.monotonic() - vm.started, body
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.5)
    tail = "\n".join(vm.console_text().splitlines()[-40:])
    raise Failed(f"no {path} on HTTPS within {limit:.0f} s; console:\n{tail}")


def boot_report(vm, detail):
    """Prints the guest's own account of its boot (and, when `detail`, where the time
    went), so that a slow boot in CI can be explained from its log alone."""
    vm.wait_agent(60)
    _, summary, _ = vm.run(["/usr/bin/systemd-analyze"], check_rc=False)
    _, crng, _ = vm.run(["/bin/sh", "-c", "dmesg | grep -m1 'crng init done' || true"])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"guest: {summary.strip().splitlines()[0] if summary.strip() else '?'}; "
          f"{crng.strip() or 'no crng line'}; host load {load}", flush=True)
    if detail:
        for argv in (["/usr/bin/systemd-analyze", "critical-chain", "streambox.service"],
                     ["/bin/sh", "-c", "systemd-analyze blame | head -20"],
                     ["/bin/sh", "-c", "journalctl -b -o short-monotonic --no-pager | tail -80"]):
            _, out, err = vm.run(argv, check_rc=False)
            print(f"--- {' '.join(argv)}\n{out}{err}", flush=True)


def main():
    out = sys.argv[1]
    images = glob.glob(os.path.join(out, "streambox-*-amd64.img"))
    if len(images) != 1:
        raise Failed(f"expected one streambox-*-amd64.img in {out}, found {images}")
    image = images[0]
    for tool in ("qemu-system-x86_64", "qemu-img", "ffmpeg", "ffprobe", "openssl"):
        if not shutil.which(tool):
            raise Failed(f"missing tool: {tool}")
    work = tempfile.mkdtemp(prefix="streambox-boot-")
    vm = Vm(image, work)
    try:
        boot_and_check(vm)
    finally:
        vm.kill()
        shutil.rmtree(work, ignore_errors=True)


def boot_and_check(vm):
    size = os.path.getsize(glob.glob(os.path.join(sys.argv[1], "streambox-*-amd64.img"))[0])
    zst = glob.glob(os.path.join(sys.argv[1], "streambox-*-amd64.img.zst"))
    print(f"image: {size / 2**20:.0f} MiB raw, "
          f"{os.path.getsize(zst[0]) / 2**20:.0f} MiB compressed" if zst else "", flush=True)
    browser = Browser()
    vm.start()
    took, page = wait_wizard(vm, browser, 300)
    print(f"boot: the setup wizard answered over HTTPS {took:.1f} s after power-on", flush=True)
    boot_report(vm, detail=took > BOOT_LIMIT)
    check(took <= BOOT_LIMIT, f"boot to the wizard within {BOOT_LIMIT:.0f} s ({took:.1f} s)")
    check("setup" in page.lower(), "the wizard's page")
    served = fingerprint(browser.peer_der)

    vm.wait_agent(60)
    # Inside: nothing failed, the root is read-only, the data partition fills the disk.
    deadline = time.monotonic() + 60
    while True:
        _, failed, _ = vm.run(["/bin/systemctl", "--failed", "--no-legend", "--plain"])
        _, state, _ = vm.run(["/bin/systemctl", "is-system-running"], check_rc=False)
        if state.strip() not in ("starting", "initializing") or time.monotonic() > deadline:
            break
        time.sleep(2)
    check(failed.strip() == "", f"no failed units (systemctl --failed: {failed.strip()!r}; {state.strip()})")
    _, opts, _ = vm.run(["/bin/findmnt", "-no", "OPTIONS", "/"])
    check(opts.split(",")[0] == "ro", f"the root file system is mounted read-only ({opts.strip()})")
    rc, _, err = vm.run(["/bin/touch", "/usr/written"], check_rc=False)
    check(rc != 0, f"writing to the root fails ({err.strip()})")
    _, part, _ = vm.run(["/bin/lsblk", "-bno", "SIZE", "/dev/disk/by-partlabel/data"])
    _, fs, _ = vm.run(["/bin/df", "-B1", "--output=size", "/var"])
    part, fs = int(part.strip()), int(fs.split()[-1])
    used_before = size - 256 * 2**20  # everything the image has before its data partition
    print(f"data: partition {part / 2**30:.2f} GiB, file system {fs / 2**30:.2f} GiB, "
          f"disk {DISK_SIZE / 2**30:.0f} GiB", flush=True)
    check(part >= DISK_SIZE - used_before - 2 * 2**20, "the data partition grew to the end of the disk")
    check(fs >= part * 0.9, "its file system grew with it")
    # Capture devices reach the service through the group the udev rules give them.
    vm.run(["/sbin/modprobe", "vivid", "n_devs=1"])
    vm.run(["/bin/udevadm", "settle"])
    _, video, _ = vm.run(["/bin/sh", "-c", "stat -c '%G %a' /dev/video*"])
    check(video.strip() != "" and all(l == "video 660" for l in video.strip().splitlines()),
          f"V4L2 devices are group video, mode 660 ({video.strip().splitlines()[:2]})")
    _, gids, _ = vm.run(["/bin/sh", "-c",
                         "grep ^Groups: /proc/$(systemctl show -P MainPID streambox)/status"])
    _, wanted, _ = vm.run(["/bin/sh", "-c", "getent group video render audio | cut -d: -f3"])
    check(set(wanted.split()) <= set(gids.split()[1:]) and len(wanted.split()) == 3,
          f"the service runs in groups video, render and audio ({gids.strip()})")
    _, machine_id, _ = vm.run(["/bin/cat", "/etc/machine-id"])
    machine_id = machine_id.strip()
    check(re.fullmatch(r"[0-9a-f]{32}", machine_id) is not None, f"a machine ID ({machine_id})")

    # The console banner: where to go, and the fingerprint the browser saw.
    deadline = time.monotonic() + 30
    while banner_fingerprint(vm.console_text()) != served and time.monotonic() < deadline:
        time.sleep(1)
    console = vm.console_text()
    check("https://streambox.local/" in console, "the banner names https://streambox.local/")
    check("https://10.0.2.15/" in console, "the banner names the box's address")
    check(banner_fingerprint(console) == served,
          f"the banner's fingerprint is the served certificate's ({served[:23]}...)")
    check("login:" not in console, "no login prompt on the serial console")

    # From the host: admin paths redirect to HTTPS, the portal answers on HTTP.
    http_base = f"http://127.0.0.1:{vm.port[80]}"
    status, headers, _ = browser.request("GET", f"{http_base}/admin")
    check(status == 308 and headers.get("Location") == "https://127.0.0.1/admin",
          f"HTTP /admin redirects to HTTPS ({status} {headers.get('Location')})")
    status, _, body = browser.request("GET", f"{http_base}/")
    check(status == 200 and "<html" in body.lower(), f"the portal answers on HTTP ({status})")

    # The firewall: a port not in the ruleset is refused even with a listener behind it.
    vm.spawn(["/usr/bin/python3", "-m", "http.server", "9000", "--directory", "/usr/share"])
    time.sleep(2)
    _, inside, _ = vm.run(["/usr/bin/python3", "-c",
                           "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9000/').status)"])
    check(inside.strip() == "200", "a listener on port 9000 answers inside the box")
    try:
        status, _, _ = browser.request("GET", f"http://127.0.0.1:{vm.port[9000]}/", timeout=8)
        blocked = False
    except (OSError, http.client.HTTPException):
        blocked = True
    check(blocked, "port 9000 is refused from outside by nftables")

    # A stream: added with the CLI inside, published over RTMP from the host, played
    # back over HLS from the host.
    _, added, _ = vm.run(["/sbin/runuser", "-u", "streambox", "--", "/usr/bin/streambox",
                          "--config", "/etc/streambox/streambox.toml", "stream", "add", "hall"])
    key = re.search(r"[Kk]ey:\s*(\S+)", added)
    check(key is not None, "streambox stream add printed a key")
    publisher = publish(vm, "hall", key.group(1), loops=2)
    playlist = f"{http_base}/live/hall/index.m3u8"
    deadline = time.monotonic() + 60
    probe = None
    while time.monotonic() < deadline:
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width",
                            "-of", "json", playlist], capture_output=True, text=True)
        if r.returncode == 0 and '"h264"' in r.stdout:
            probe = json.loads(r.stdout)
            break
        time.sleep(2)
    publisher.kill()
    publisher.wait()
    check(probe is not None, "an RTMP publish from the host plays back over HLS from the host")
    check(any(s.get("width") == 1280 for s in probe["streams"]), "1280-wide video over HLS")

    # Step 1 of the wizard, then a second boot: progress, certificate and identity stay.
    https_base = f"https://127.0.0.1:{vm.port[443]}"
    status, _, page = browser.request("GET", f"{https_base}/setup")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    password = "correct horse battery staple"
    status, headers, _ = browser.request(
        "POST", f"{https_base}/setup/admin",
        {"csrf": csrf, "name": "admin", "password": password, "again": password})
    check(status == 303, f"wizard step 1 accepted ({status})")
    vm.shutdown()
    vm.start()
    fresh = Browser()
    took, page = wait_wizard(vm, fresh, 300)
    print(f"second boot: the wizard answered {took:.1f} s after power-on", flush=True)
    check("Sign in to continue setup" in page, "the wizard's progress survived the reboot")
    check(fingerprint(fresh.peer_der) == served, "the same TLS certificate after the reboot")
    vm.wait_agent(60)
    _, again, _ = vm.run(["/bin/cat", "/etc/machine-id"])
    check(again.strip() == machine_id, "the same machine ID after the reboot")
    _, boots, _ = vm.run(["/bin/journalctl", "--list-boots", "--no-pager", "-q"])
    check(len(boots.strip().splitlines()) >= 2, "the journal kept the first boot's log (persistent)")
    finish_setup(vm, browser, https_base)
    hardware_checks(vm, browser, https_base)
    capture_checks(vm, browser, https_base)
    network_checks(vm, browser, https_base)
    backup = backup_checks(browser, https_base)
    update_checks(vm, browser, https_base)
    vm.shutdown()

    # A data partition that fails its check: its superblock is zeroed on the disk. The box
    # boots on a stand-in, says so, and leaves the partition exactly as it was.
    start = data_partition_start(sys.argv[1])
    zeroed = f"{start} {2**20}"  # its first MiB: superblock, group descriptors, bitmaps
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -q -P 0 {zeroed}", vm.disk],
                   check=True, stdout=subprocess.DEVNULL)
    check(still_zero(vm.disk, zeroed), "the data partition's first MiB is zeroed")
    vm.start()
    broken = Browser()
    took, page = wait_wizard(vm, broken, 300)
    print(f"broken data partition: the wizard answered {took:.1f} s after power-on", flush=True)
    check('id="system-fault"' in page and "failed its check" in page,
          "the wizard says the data partition failed its check")
    deadline = time.monotonic() + 30
    while "THE DATA PARTITION COULD NOT BE USED" not in vm.console_text() and time.monotonic() < deadline:
        time.sleep(1)
    check("THE DATA PARTITION COULD NOT BE USED" in vm.console_text(), "the console says so too")
    vm.wait_agent(60)
    _, failed, _ = vm.run(["/bin/systemctl", "--failed", "--no-legend", "--plain"])
    check(failed.strip() == "", f"no failed units on the stand-in ({failed.strip()!r})")
    vm.shutdown()
    # A format or a repair (e2fsck restoring the superblock from a backup) writes here.
    check(still_zero(vm.disk, zeroed), "nothing formatted or repaired the broken data partition")
    restore_checks(backup, served)


def backup_checks(browser, base):
    """Issue 20: the configuration taken away. A stream and a camera are added, then the
    backup is downloaded through the API; returns the archive and what it should bring."""
    api = Api(browser, base)
    status, made = api("POST", "/api/streams", {"name": "chapel"})
    check(status in (200, 201) and made.get("key"), f"a stream to take away ({status})")
    camera = {"name": "door", "url": "rtsp://192.0.2.10/door", "username": "cam",
              "password": "door s3cret", "transport": "tcp"}
    status, answer = api("POST", "/api/cameras", camera)
    check(status in (200, 201), f"a camera to take away ({status} {answer})")
    _, streams = api("GET", "/api/streams")
    _, vpn = api("GET", "/api/vpn")
    t0 = time.monotonic()
    status, headers, archive = browser.request(
        "POST", f"{base}/api/system/backup", headers={"X-CSRF-Token": api.csrf}, raw=True, timeout=60)
    check(status == 200 and archive[:4] == b"\x28\xb5\x2f\xfd",
          f"the backup downloads as a zstd archive ({status}, {len(archive)} bytes)")
    print(f"backup: {len(archive) / 1024:.0f} KiB in {time.monotonic() - t0:.1f} s", flush=True)
    return {"archive": archive, "streams": sorted(s["name"] for s in streams), "key": made["key"],
            "camera": camera, "peers": sorted(p["name"] for p in vpn["peers"])}


def restore_checks(backup, served):
    """Issue 20: the backup restored into a second, freshly flashed box, from its setup
    wizard's first step: after the restart it serves the first box's certificate, the
    administrator signs in with the old password, and the streams (their keys publish),
    the camera and the VPN's peers are there."""
    image = glob.glob(os.path.join(sys.argv[1], "streambox-*-amd64.img"))[0]
    work = tempfile.mkdtemp(prefix="streambox-restore-")
    vm = Vm(image, work)
    publisher = None
    try:
        browser = Browser()
        vm.start()
        took, page = wait_wizard(vm, browser, 300)
        print(f"restore: a second box's wizard answered {took:.1f} s after power-on", flush=True)
        check(fingerprint(browser.peer_der) != served, "the second box has a certificate of its own")
        base = f"https://127.0.0.1:{vm.port[443]}"
        boundary = "streambox-restore-" + os.urandom(8).hex()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"backup\"; "
                f"filename=\"streambox.tar.zst\"\r\nContent-Type: application/zstd\r\n\r\n").encode() \
            + backup["archive"] + f"\r\n--{boundary}--\r\n".encode()
        u = urllib.parse.urlsplit(f"{base}/setup/restore?csrf={urllib.parse.quote(csrf_of(page))}")
        c = http.client.HTTPSConnection(u.hostname, u.port, timeout=60, context=browser.ctx)
        c.request("POST", f"{u.path}?{u.query}", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())})
        t0 = time.monotonic()
        status, page = answer_of(c)
        check(status == 200 and 'id="restored"' in str(page),
              f"the wizard's first step takes the backup ({status})")
        # The service restarts to put it in place, then serves the first box's certificate.
        def restored():
            b = Browser()
            return answers(b, f"{base}/login") and fingerprint(b.peer_der) == served
        wait_for("the restored box to serve the first box's certificate", 120, restored)
        print(f"restore: the first box's certificate served {time.monotonic() - t0:.1f} s after the upload",
              flush=True)
        api = Api(signed_in_again(base), base)
        _, streams = api("GET", "/api/streams")
        check(sorted(s["name"] for s in streams) == backup["streams"],
              f"the streams are there ({sorted(s['name'] for s in streams)})")
        cam = backup["camera"]
        status, detail = api("GET", f"/api/streams/{cam['name']}")
        check(status == 200 and "192.0.2.10" in json.dumps(detail) and cam["transport"] in json.dumps(detail),
              f"the camera is there with its address and transport ({status} {detail})")
        _, vpn = api("GET", "/api/vpn")
        check(sorted(p["name"] for p in vpn["peers"]) == backup["peers"],
              f"the VPN's peers are there ({sorted(p['name'] for p in vpn['peers'])})")
        # The stream's key publishes over RTMP, and the stream plays over HLS.
        publisher = publish(vm, "chapel", backup["key"])
        playlist = f"http://127.0.0.1:{vm.port[80]}/live/chapel/index.m3u8"

        def plays():
            r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                                "-of", "json", playlist], capture_output=True, text=True)
            return r.returncode == 0 and '"h264"' in r.stdout
        check(wait_for("the restored stream to play", 90, plays),
              "the restored stream's key publishes, and it plays over HLS")
    finally:
        if publisher:
            publisher.kill()
            publisher.wait()
        vm.kill()
        shutil.rmtree(work, ignore_errors=True)


def publish(vm, stream, key, loops=-1):
    """ffmpeg publishing the test clip (`loops` more times, -1 for ever) in real time
    over RTMP to `stream` on `vm` with `key`; the process."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-stream_loop", str(loops), "-i", CLIP, "-c", "copy",
         "-f", "flv", f"rtmp://127.0.0.1:{vm.port[1935]}/live/{stream}?key={key}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def upload(browser, url, path, headers):
    """POSTs the file at `path` as the body (streamed, with its length), with `browser`'s
    cookies; (status, parsed JSON or text)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPSConnection(u.hostname, u.port, timeout=600, context=browser.ctx)
    headers = dict(headers)
    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    headers["Content-Type"] = "application/octet-stream"
    headers["Content-Length"] = str(os.path.getsize(path))
    with open(path, "rb") as f:
        c.request("POST", u.path + (f"?{u.query}" if u.query else ""), body=f, headers=headers)
        return answer_of(c)


def announce(browser, url, length, headers):
    """POSTs only the head of an upload of `length` bytes (as a client waiting for an
    early answer does), with `browser`'s cookies; (status, parsed JSON or text)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPSConnection(u.hostname, u.port, timeout=60, context=browser.ctx)
    c.putrequest("POST", u.path + (f"?{u.query}" if u.query else ""))
    for k, v in {**headers, "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
                 "Content-Type": "application/octet-stream", "Content-Length": str(length)}.items():
        c.putheader(k, v)
    c.endheaders()
    return answer_of(c)


def upload_chunked(browser, url, path, headers):
    """POSTs the file at `path` with chunked transfer coding (no length given), stopping
    as soon as the server answers; (status, parsed JSON or text, bytes sent)."""
    u = urllib.parse.urlsplit(url)
    # TLS 1.2: no session tickets come after the handshake (as in 1.3), so the socket
    # turns readable only with the answer.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c = http.client.HTTPSConnection(u.hostname, u.port, timeout=600, context=ctx)
    c.putrequest("POST", u.path + (f"?{u.query}" if u.query else ""))
    for k, v in {**headers, "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
                 "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}.items():
        c.putheader(k, v)
    c.endheaders()
    sent = 0
    with open(path, "rb") as f:
        try:
            while True:
                if select.select([c.sock], [], [], 0)[0]:
                    break  # the answer came before the end
                data = f.read(2**20)
                c.send(b"%x\r\n" % len(data) + data + b"\r\n")
                sent += len(data)
                if not data:
                    break
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server stopped reading: its answer is there
    status, answer = answer_of(c)
    return status, answer, sent


def answer_of(c):
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def make_bundle(out, root, bundle, version, signing, *edits):
    """image/bundle.sh ROOT BUNDLE --version VERSION --signing SIGNING EDITS…; the
    seconds it took."""
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(REPO, "image", "bundle.sh"), root, bundle, "--version",
                        version, "--signing", signing, *edits], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed(f"bundle.sh {version}: {r.stderr.strip()}")
    return time.monotonic() - t0


def update_status(api):
    status, st = api("GET", "/api/system/update")
    if status != 200:
        raise Failed(f"GET /api/system/update: {status} {st}")
    return st


def wait_installed(api, version, seconds):
    """Polls the install of `version` until it is installed; the seconds it took."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < seconds:
        try:
            p = update_status(api)["progress"]
        except (OSError, http.client.HTTPException):
            time.sleep(2)
            continue
        if p != last:
            print(f"update: {p}", flush=True)
            last = p
        if p["state"] == "installed" and p["version"] == version:
            return time.monotonic() - t0
        if p["state"] == "failed":
            raise Failed(f"the install of {version} failed: {p}")
        time.sleep(2)
    raise Failed(f"{version} not installed within {seconds} s: {last}")


def wait_release(browser, base, version, seconds):
    """After a reboot: polls until the box answers with release `version`; the status."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            api = Api(browser, base)
            st = update_status(api)
            if st["release"] == version:
                return api, st, time.monotonic() - t0
        except (OSError, http.client.HTTPException, Failed, ValueError):
            pass
        time.sleep(3)
    raise Failed(f"the box did not come back with {version} within {seconds} s")


def esp_entries(vm):
    _, out, _ = vm.run(["/bin/ls", "/efi/loader/entries"])
    return sorted(out.split())


def update_checks(vm, browser, base):
    """Issue 20 on the box: A/B updates through the API. Refused bundles (another key,
    cut short, older) change nothing; an install cut by a power loss leaves the running
    slot booting; a good bundle installs to the other slot and runs after a reboot, with
    streams, users and recordings kept; a bundle whose service cannot start is given up
    after its tries, and the previous slot boots by itself and says why."""
    out = sys.argv[1]
    signing = os.path.join(out, "signing")
    root = glob.glob(os.path.join(out, "streambox-*-amd64.root.ext4"))[0]
    api = Api(browser, base)
    before = update_status(api)
    check(before["slot"] == "a" and before["release"], f"the box runs slot A ({before['release']}, {before['slot']})")
    running = before["release"]
    major, minor, patch = (int(x) for x in running.split("+")[0].split("-")[0].split("."))
    newer, newest, older = (f"{major}.{minor}.{patch + 1}", f"{major}.{minor}.{patch + 2}",
                            f"{major}.{minor}.{patch}-rc.0")
    _, streams = api("GET", "/api/streams")
    names = sorted(s["name"] for s in streams)
    recorded = {s["name"]: s["disk_bytes"] for s in streams}

    work = tempfile.mkdtemp(prefix="bundles-", dir=out)
    try:
        # Bundles: a small root for the refusals, the image's root for the rest.
        tiny_tree = os.path.join(work, "tiny")
        os.makedirs(os.path.join(tiny_tree, "usr/lib/streambox"))
        with open(os.path.join(tiny_tree, "filler"), "wb") as f:
            f.write(os.urandom(2**20))  # squashfs wants more than 4 KiB
        tiny = os.path.join(work, "tiny.ext4")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", tiny_tree, tiny, "16M"], check=True)
        other = os.path.join(work, "other-signing")
        subprocess.run([os.path.join(REPO, "image", "bundle.sh"), "--init-signing", other],
                       check=True, stdout=subprocess.DEVNULL)
        wrong = os.path.join(work, "wrong.raucb")
        make_bundle(out, tiny, wrong, newer, other)
        old = os.path.join(work, "older.raucb")
        make_bundle(out, tiny, old, older, signing)
        foreign = os.path.join(work, "foreign.raucb")
        make_bundle(out, tiny, foreign, newer, signing, "--compatible", "streambox-arm64")
        marker = os.path.join(work, "marker")
        with open(marker, "w") as f:
            f.write(f"update test {newer}\n")
        good = os.path.join(work, "good.raucb")
        took = make_bundle(out, root, good, newer, signing,
                           "--put", f"{marker}:/usr/lib/streambox/update-marker")
        print(f"update: bundle {newer} made in {took:.0f} s, {os.path.getsize(good) / 2**20:.0f} MiB",
              flush=True)
        down = os.path.join(work, "downgrade.raucb")
        make_bundle(out, root, down, older, signing)
        # A USB stick (FAT) with the good bundle on it.
        stick = os.path.join(work, "stick.img")
        stick_name = f"streambox-{newer}-amd64.raucb"
        subprocess.run(["mkfs.vfat", "-n", "UPDATE", "-C", stick, str(256 * 1024)], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["mcopy", "-i", stick, good, f"::/{stick_name}"], check=True)
        cut = os.path.join(work, "cut.raucb")
        with open(good, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(os.path.getsize(good) // 2))
        dropin = os.path.join(work, "broken.conf")
        with open(dropin, "w") as f:
            f.write("[Service]\nExecStart=\nExecStart=/bin/false\n")
        broken = os.path.join(work, "broken.raucb")
        make_bundle(out, root, broken, newest, signing,
                    "--put", f"{dropin}:/etc/systemd/system/streambox.service.d/zz-broken.conf")

        # Refused, with the reason; nothing changes.
        headers = {"X-CSRF-Token": api.csrf}
        for path, what, says in ((wrong, "signed with another key", "signature is not by this appliance's"),
                                 (cut, "cut short", "cut short"),
                                 (foreign, "for another system", 'is for "streambox-arm64"'),
                                 (old, "older", "older than the running")):
            status, answer = upload(browser, f"{base}/api/system/update", path, headers)
            check(status == 422 and says in str(answer),
                  f"a bundle {what} is refused: {status} {answer}")
        st = update_status(api)
        check(st["release"] == running and st["slot"] == "a" and st["pending"] is None,
              f"nothing changed ({st['release']}, slot {st['slot']}, pending {st['pending']})")
        status, answer = upload(browser, f"{base}/api/system/update", old, {})
        check(status == 403, f"an upload without the CSRF token is refused ({status})")

        # A full data partition: an upload that says its length is refused before its
        # first byte; one that does not is given up when the room left for recordings
        # is reached; either way nothing of it stays.
        _, avail, _ = vm.run(["/bin/df", "-B1", "--output=avail", "/var"])
        avail = int(avail.split()[-1])
        room = 256 * 2**20 + 100 * 2**20  # what the service keeps free, and 100 MiB
        vm.run(["/usr/bin/fallocate", "-l", str(avail - room), "/var/filler"])
        status, answer = announce(browser, f"{base}/api/system/update", os.path.getsize(good), headers)
        check(status == 503 and "too few for a bundle" in str(answer),
              f"with the data disk nearly full a bundle is refused up front: {status} {answer}")
        status, answer, sent = upload_chunked(browser, f"{base}/api/system/update", good, headers)
        check(status == 503 and "nearly full" in str(answer),
              f"an upload of no given length stops at the room kept for recordings "
              f"(after {sent / 2**20:.0f} MiB sent): {status} {answer}")
        _, left, _ = vm.run(["/bin/ls", "-A", "/var/lib/streambox/updates"])
        check(left.strip() == "", f"nothing of the upload is kept ({left.strip()!r})")
        vm.run(["/bin/rm", "/var/filler"])
        st = update_status(api)
        check(st["release"] == running and st["pending"] is None, "nothing else changed")

        # A power cut in the middle of an install (a downgrade the admin forced): the
        # running slot boots, and the install can be done again.
        status, answer = upload(browser, f"{base}/api/system/update?downgrade=1", down, headers)
        check(status == 202 and answer.get("slot") == "b" and answer.get("version") == older,
              f"an older bundle is accepted for slot B when the downgrade is forced ({status} {answer})")
        wait_for("the install to be under way", 600,
                 lambda: (update_status(api)["progress"].get("percent") or 0) >= 20)
        vm.kill()
        print("update: QEMU killed in the middle of the install", flush=True)
        vm.start(stick=stick)
        took, _ = wait_wizard(vm, Browser(), 300, path="/login")
        api = Api(browser, base)
        st = update_status(api)
        check(st["slot"] == "a" and st["release"] == running and st["pending"] is None,
              f"after the power cut slot A boots ({took:.0f} s), as it was ({st['slot']}, {st['release']})")
        vm.wait_agent(60)
        check(not any(e.startswith("streambox-b.conf") or e.startswith("streambox-b+2") for e in esp_entries(vm)),
              f"the half-written slot B is not bootable ({esp_entries(vm)})")

        # The update, from a USB stick plugged in: installed to slot B, then the reboot.
        vm.plug_stick()
        on_stick = wait_for("the stick's bundle to be offered", 60,
                            lambda: update_status(api).get("media"))
        check([m["file"] for m in on_stick] == [f"usb-sda/{stick_name}"]
              and on_stick[0]["bytes"] == os.path.getsize(good),
              f"the API lists the bundle on the USB stick ({on_stick})")
        _, _, page = browser.request("GET", f"{base}/admin/system")
        check('id="media-bundles"' in page and stick_name in page, "so does the System page")
        status, answer = api("POST", "/api/system/update/media", {"file": "usb-sda/../../etc/passwd"})
        check(status == 404, f"a file that is no bundle on the stick is refused ({status} {answer})")
        t0 = time.monotonic()
        # Answered once the bundle is copied off the stick and checked, as an upload is.
        status, answer = api("POST", "/api/system/update/media", {"file": on_stick[0]["file"]},
                             timeout=600)
        check(status == 202 and answer.get("slot") == "b", f"the bundle on the stick is accepted ({status} {answer})")
        took = wait_installed(api, newer, 1200)
        print(f"update: {newer} copied from the USB stick and installed in {time.monotonic() - t0:.0f} s",
              flush=True)
        st = update_status(api)
        check(st["pending"] and st["pending"]["slot"] == "b", f"it waits for a reboot ({st['pending']})")
        _, _, page = browser.request("GET", f"{base}/admin/system")
        check('id="update-pending"' in page and "Reboot now" in page and 'id="reboot-at"' in page,
              "the System page offers the reboot, now or at a time")
        # A reboot at a time: scheduled through logind, shown, cancelled; then one in 30 s.
        def rfc3339(seconds):
            t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
            return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        status, answer = api("POST", "/api/system/reboot", {"at": rfc3339(3600)})
        check(status == 202 and answer.get("reboot_at"), f"a reboot scheduled in an hour ({status} {answer})")
        st = update_status(api)
        _, _, page = browser.request("GET", f"{base}/admin/system")
        check(st.get("reboot_at") == answer["reboot_at"] and 'id="reboot-scheduled"' in page,
              f"the API and the page show it ({st.get('reboot_at')})")
        status, answer = api("DELETE", "/api/system/reboot")
        check(status == 200 and answer == {"cancelled": True} and update_status(api).get("reboot_at") is None,
              f"and it is cancelled ({status} {answer})")
        status, answer = api("POST", "/api/system/reboot", {"at": rfc3339(30)})
        check(status == 202, f"a reboot scheduled in 30 s through the API ({status} {answer})")
        api, st, took = wait_release(browser, base, newer, 600)
        print(f"update: {newer} answered {took:.0f} s after the reboot was scheduled"
              + (" (over 150 s: the watchdog ended a hung reboot)" if took > 150 else ""), flush=True)
        check(took >= 30, f"the box rebooted no sooner than scheduled ({took:.0f} s)")
        check(st["slot"] == "b", f"it runs from slot B ({st['slot']})")
        st = wait_for("the new slot to pass its health check", 300,
                      lambda: (lambda s: s if s.get("last") else None)(update_status(api)))
        check(st["last"]["outcome"] == "updated" and st["last"]["from_version"] == running,
              f"the update is reported ({st['last']})")
        vm.wait_agent(120)
        _, text, _ = vm.run(["/bin/cat", "/usr/lib/streambox/update-marker"])
        check(text.strip() == f"update test {newer}", "the new root's marker file is there")
        check("streambox-b.conf" in esp_entries(vm), f"slot B was marked good ({esp_entries(vm)})")
        _, streams = api("GET", "/api/streams")
        check(sorted(s["name"] for s in streams) == names, f"the streams are kept ({names})")
        check(all(s["disk_bytes"] >= recorded.get(s["name"], 0) for s in streams),
              "the recordings are kept")
        signed_in_again(base)

        # A bundle whose service cannot start: given up after its tries, and slot B boots
        # by itself and says why.
        headers = {"X-CSRF-Token": api.csrf}
        status, answer = upload(browser, f"{base}/api/system/update", broken, headers)
        check(status == 202 and answer.get("slot") == "a", f"the broken bundle goes to slot A ({status} {answer})")
        wait_installed(api, newest, 1200)
        t0 = time.monotonic()
        api("POST", "/api/system/reboot")
        time.sleep(20)

        def rolled_back():
            try:
                a = Api(browser, base)
                s = update_status(a)
                return (a, s) if s.get("last") and s["last"]["outcome"] == "rolled back" else None
            except (OSError, http.client.HTTPException, Failed, ValueError):
                return None
        api, st = wait_for("the rollback", 1200, rolled_back)
        print(f"update: rolled back {time.monotonic() - t0:.0f} s after the reboot: {st['last']}", flush=True)
        check(st["release"] == newer and st["slot"] == "b", f"slot B runs again ({st['release']}, {st['slot']})")
        check("streambox.service" in (st["last"]["reason"] or ""),
              f"the reason is the failed slot's ({st['last']['reason']})")
        vm.wait_agent(120)
        entries = esp_entries(vm)
        check(any(re.fullmatch(r"streambox-a\+0-2\.conf", e) for e in entries),
              f"slot A was tried twice, then given up ({entries})")
        _, _, page = browser.request("GET", f"{base}/admin/system")
        check('id="rolled-back"' in page and f"update to {newest} failed and was rolled back" in page,
              "the System page says the update was rolled back")
        shown = wait_for("the console to say so", 30,
                         lambda: f"update to {newest} failed and was rolled back" in vm.console_text())
        check(shown, "the console banner says the update was rolled back")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def signed_in_again(base):
    """A new browser signed in at `base` as the administrator with the password the
    wizard was given (checked)."""
    signed_in = Browser()
    _, _, page = signed_in.request("GET", f"{base}/login")
    status, _, _ = signed_in.request(
        "POST", f"{base}/login", {"csrf": csrf_of(page), "name": "admin",
                                  "password": "correct horse battery staple", "next": "/admin"})
    check(status == 303, f"the administrator signs in with the old password ({status})")
    return signed_in


def csrf_of(page):
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def finish_setup(vm, browser, base):
    """The wizard's remaining steps, with the session step 1 gave `browser`."""
    for path, fields in (("/setup/identity", {"name": "Hall", "time_zone": "UTC"}),
                         ("/setup/network", {}), ("/setup/storage", {"keep": "7d"})):
        _, _, page = browser.request("GET", f"{base}/setup")
        status, headers, _ = browser.request("POST", f"{base}{path}",
                                             {**fields, "csrf": csrf_of(page)})
        check(status == 303, f"wizard {path} accepted ({status})")
    _, _, page = browser.request("GET", f"{base}/setup")
    status, headers, _ = browser.request("POST", f"{base}/setup/finish", {"csrf": csrf_of(page)})
    check(status == 303 and "/admin" in (headers.get("Location") or ""),
          f"the wizard finished ({status} {headers.get('Location')})")


class Api:
    """The JSON API with `browser`'s session, at `base` (one of the box's addresses)."""

    def __init__(self, browser, base):
        self.browser, self.base = browser, base
        status, _, body = browser.request("GET", f"{base}/api/session")
        if status != 200:
            raise Failed(f"GET /api/session: {status} {body}")
        self.csrf = json.loads(body)["csrf"]

    def __call__(self, method, path, body=None, timeout=30):
        status, _, text = self.browser.request(
            method, f"{self.base}{path}", json_body=body, timeout=timeout,
            headers={"X-CSRF-Token": self.csrf})
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text


def addresses_of(vm, nic):
    """The addresses (`a.b.c.d/nn`, `x::y/nn`) the kernel has on `nic`, link-local left out."""
    _, out, _ = vm.run(["/sbin/ip", "-o", "addr", "show", "dev", nic])
    return {f.split()[3] for f in out.strip().splitlines() if " scope link" not in f}


def answers(browser, url):
    """Whether `url` answers 200 now."""
    try:
        return browser.request("GET", url, timeout=5)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def wait_for(what, seconds, f):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = f()
        if got:
            return got
        time.sleep(1)
    raise Failed(f"timed out ({seconds} s) waiting for {what}")


MDNS_QUERY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mdns_query.py")


def peer_namespace(vm):
    """Another machine on a LAN that carries multicast (slirp's networks do not): a network
    namespace in the guest, joined to the box by a veth pair (sbv0 on the box at
    10.77.0.1/24, sbv1 in the namespace at .2, IPv6 link-local on both)."""
    vm.run(["/bin/sh", "-c",
            "ip netns add peer && ip link add sbv0 type veth peer name sbv1 netns peer"
            " && ip addr add 10.77.0.1/24 dev sbv0 && ip link set sbv0 up"
            " && ip -n peer addr add 10.77.0.2/24 dev sbv1 && ip -n peer link set sbv1 up"
            " && ip -n peer route add 224.0.0.0/4 dev sbv1"])


def mdns(vm, name, kind, seconds=3):
    """The answers to an mDNS query for `name`'s `kind` records (A, AAAA, PTR) asked from
    the peer namespace; [] when none came."""
    with open(MDNS_QUERY) as f:
        source = f.read()
    rc, out, _ = vm.run(["/sbin/ip", "netns", "exec", "peer", "/usr/bin/python3", "-c", source,
                         name, kind, "sbv1", str(seconds)], timeout=seconds + 30, check_rc=False)
    return out.strip().splitlines() if rc == 0 else []


NTP_SERVERS = ["10.0.2.2", "ntp.hall.example"]


def ntp_servers(vm):
    """The NTP servers timesyncd was given (its SystemNTPServers)."""
    _, out, _ = vm.run(["/usr/bin/timedatectl", "show-timesync", "-p", "SystemNTPServers", "--value"])
    return out.split()


def mdns_report(vm):
    """What avahi and the links were doing, printed when a name did not resolve."""
    _, out, _ = vm.run(["/bin/sh", "-c", "journalctl -b -u avahi-daemon --no-pager | grep -i -B4 -A2 conflict | head -40; "
                        "journalctl -b -u avahi-daemon --no-pager | tail -30; "
                        "journalctl -b -u streambox-netplan --no-pager | grep -i 'avahi\\|name' | tail -10; "
                        "ip -br addr; ip -n peer -br addr; systemctl is-active avahi-daemon"],
                       check_rc=False)
    print(out, flush=True)


def wait_mdns(vm, name, kind, seconds=60):
    """The answers for `name` once there are some, or a failure with avahi's log."""
    try:
        return wait_for(f"{name} over mDNS ({kind})", seconds, lambda: mdns(vm, name, kind))
    except Failed:
        mdns_report(vm)
        raise


def name_checks(vm, api):
    """The box answers as NAME.local over mDNS, IPv4 and IPv6, with its services; a rename
    through the API takes effect over mDNS and in the kernel at once."""
    peer_namespace(vm)
    got = wait_mdns(vm, "streambox.local", "A")
    check("10.77.0.1" in got, f"streambox.local answers with the box's address on that LAN ({got})")
    got = wait_mdns(vm, "streambox.local", "AAAA")
    check(any(a.startswith("fe80:") for a in got), f"streambox.local answers over IPv6 ({got})")
    got = wait_mdns(vm, "_rtsp._tcp.local", "PTR", 30)
    check("streambox._rtsp._tcp.local" in got, f"the box announces RTSP ({got})")
    for bad, why in (("Main Hall", "lowercase"), ("-hall", "hyphen"), ("streambox", "already")):
        status, answer = api("PUT", "/api/network/hostname", {"hostname": bad})
        check(status == 422 and why in str(answer), f"the name {bad!r} is refused: {why} ({answer})")
    t0 = time.monotonic()
    status, answer = api("PUT", "/api/network/hostname", {"hostname": "studio"})
    check(status == 200 and answer.get("mdns_name") == "studio.local",
          f"renamed through the API ({status} {answer})")
    got = wait_mdns(vm, "studio.local", "A")
    print(f"network: studio.local answered {time.monotonic() - t0:.1f} s after the rename", flush=True)
    check("10.77.0.1" in got, f"the new name answers ({got})")
    check(mdns(vm, "streambox.local", "A") == [], "the old name no longer answers")
    got = wait_mdns(vm, "_https._tcp.local", "PTR", 30)
    check("studio._https._tcp.local" in got, f"the services carry the new name ({got})")
    _, kernel, _ = vm.run(["/bin/cat", "/proc/sys/kernel/hostname"])
    check(kernel.strip() == "studio", f"the kernel's host name follows ({kernel.strip()})")
    # avahi renames the host after a conflict, also a spurious one (avahi#117): made
    # here as avahi makes it, the name comes back by itself.
    avahi = ["/usr/bin/busctl", "call", "org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server"]
    vm.run(avahi + ["SetHostName", "s", "studio-2"])
    t0 = time.monotonic()
    wait_for("avahi to announce studio again", 60,
             lambda: '"studio"' in vm.run(avahi + ["GetHostName"], check_rc=False)[1])
    got = wait_mdns(vm, "studio.local", "A")
    print(f"network: studio.local was back {time.monotonic() - t0:.1f} s after avahi gave it up", flush=True)
    check("10.77.0.1" in got, f"the name comes back after avahi gives it up ({got})")
    rc, out, _ = vm.run(["/usr/bin/getent", "hosts", "studio"], check_rc=False)
    check(rc == 0, f"the box resolves its own new name (nss-myhostname): {out.strip()}")
    _, view = api("GET", "/api/network")
    check(view.get("hostname") == "studio", f"GET /api/network has the new name ({view.get('hostname')})")

    # NTP servers: set through the API, in use by timesyncd at once.
    status, answer = api("PUT", "/api/network/ntp", {"servers": ["time server"]})
    check(status == 422 and "neither" in str(answer), f"a bad NTP server is refused ({answer})")
    status, answer = api("PUT", "/api/network/ntp", {"servers": NTP_SERVERS})
    check(status == 200 and answer.get("system") == NTP_SERVERS,
          f"NTP servers set through the API ({status} {answer})")
    check(ntp_servers(vm) == NTP_SERVERS, f"timesyncd uses them ({ntp_servers(vm)})")


class Directory:
    """A registration directory on the host, over HTTPS with a certificate for 10.0.2.2
    (where the guest reaches the host through QEMU's user network) from a private
    certificate authority:
    records each registration and answers with `status` (401 for another token)."""

    TOKEN = "hall-token"

    def __init__(self, work):
        # A private certificate authority (whose certificate the box is given) and the
        # directory's certificate from it, for 10.0.2.2.
        p = lambda name: os.path.join(work, name)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        with open(p("ext"), "w") as f:
            f.write("subjectAltName=IP:10.0.2.2\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        for argv in (["req", "-x509", *ec, "-days", "2", "-subj", "/CN=streambox test CA",
                      "-keyout", p("ca-key.pem"), "-out", p("ca.pem")],
                     ["req", *ec, "-subj", "/CN=directory", "-keyout", p("key.pem"),
                      "-out", p("dir.csr")],
                     ["x509", "-req", "-in", p("dir.csr"), "-CA", p("ca.pem"), "-CAkey",
                      p("ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", p("ext"),
                      "-out", p("cert.pem")]):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)
        cert, key = p("cert.pem"), p("key.pem")
        with open(p("ca.pem")) as f:
            self.ca_pem = f.read()
        self.status, self.arrived, self.lock = 200, [], threading.Lock()
        directory = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                auth = self.headers.get("Authorization", "")
                with directory.lock:
                    directory.arrived.append((time.monotonic(), auth, json.loads(body or b"null")))
                    code = directory.status if auth == f"Bearer {directory.TOKEN}" else 401
                text = {200: b"registered", 401: b"token expired"}.get(code, b"overloaded")
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://10.0.2.2:{self.server.server_address[1]}/register"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.arrived)

    def wait(self, n, seconds):
        """The registrations once there are at least n."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.arrived) >= n:
                    return list(self.arrived)
            time.sleep(0.2)
        raise Failed(f"timed out ({seconds} s) waiting for registration {n} (got {self.count()})")


def registration_checks(vm, browser, base, api):
    """The box registers its global IPv6 addresses with a directory: at once when set
    up, again within seconds of an address change, with backoff while the directory
    fails, and a refused token is shown on the page. The global addresses are added by
    hand to the box's end of the peer's veth (networkd leaves it alone)."""
    work = tempfile.mkdtemp(prefix="streambox-dir-")
    d = Directory(work)
    # The certificates are valid from the second they were made, by the host's clock;
    # the guest's may be a second behind (its clock starts from the emulated RTC's whole
    # seconds), and it would find them "not valid yet".
    time.sleep(3)
    vm.run(["/sbin/ip", "addr", "add", "2001:db8:77::5/64", "dev", "sbv0", "nodad"])
    status, answer = api("PUT", "/api/network/registration",
                         {"url": d.url, "token": "stale", "ca_pem": d.ca_pem})
    check(status == 422 and "refused the token" in str(answer), f"a wrong token is refused ({answer})")
    status, answer = api("PUT", "/api/network/registration", {"url": d.url, "token": d.TOKEN})
    check(status == 422 and "could not be reached" in str(answer),
          f"a directory whose certificate is not trusted is refused ({answer})")
    status, view = api("PUT", "/api/network/registration",
                       {"url": d.url, "token": d.TOKEN, "ca_pem": d.ca_pem, "interval_seconds": 600})
    check(status == 200 and (view.get("last") or {}).get("outcome") == "accepted",
          f"registered with the directory ({status} {view})")
    _, _, first = d.arrived[-1]
    check("2001:db8:77::5" in first["addresses"] and first["name"] == "studio"
          and any(u["admin"] == "https://[2001:db8:77::5]/" for u in first["urls"]),
          f"the registration has the box's global IPv6 address, name and URLs ({first})")
    n = d.count()
    t0 = time.monotonic()
    vm.run(["/sbin/ip", "addr", "add", "2001:db8:77::6/64", "dev", "sbv0", "nodad"])
    got = d.wait(n + 1, 10)
    print(f"network: a new address was registered {time.monotonic() - t0:.1f} s after it was added",
          flush=True)
    wait_for("the network page's live state to show the new address", 10,
                    lambda: "2001:db8:77::6/64" in browser.request("GET", f"{base}/admin/network/live")[2])
    print(f"network: the page's live state showed it {time.monotonic() - t0:.1f} s after it was added",
          flush=True)
    body = got[n][2]
    check(body["reason"] == "addresses" and {"2001:db8:77::5", "2001:db8:77::6"} <= set(body["addresses"]),
          f"an address change is registered at once ({body['reason']} {body['addresses']})")
    # The directory fails: tried again after 2 s, then 4 s.
    d.status = 500
    n = d.count()
    vm.run(["/sbin/ip", "addr", "del", "2001:db8:77::6/64", "dev", "sbv0"])
    got = d.wait(n + 3, 40)
    t = [a[0] for a in got[n:n + 3]]
    check(t[1] - t[0] >= 1.5 and t[2] - t[1] >= 3.5,
          f"a failing directory is retried with backoff ({t[1] - t[0]:.1f} s, then {t[2] - t[1]:.1f} s)")
    # The token expires: the next retry is refused, and the page says so.
    d.status = 401
    n = d.count()
    d.wait(n + 1, 30)
    def refused_shown():
        page = browser.request("GET", f"{base}/admin/network")[2]
        return page if "refused the token" in page else None
    page = wait_for("the page to show the refused token", 10, refused_shown)
    check("the directory refused the token (401) token expired" in page,
          "the network page shows the directory's refusal")
    status, view = api("DELETE", "/api/network/registration")
    check(status == 200 and view.get("enabled") is False, f"registration off ({status} {view})")
    vm.run(["/sbin/ip", "addr", "del", "2001:db8:77::5/64", "dev", "sbv0"])
    d.server.shutdown()
    shutil.rmtree(work, ignore_errors=True)


VPN4, VPN6 = "10.99.0.0/24", "fd99:0:0:1::/64"
VPN_BOX = "10.99.0.1"
OUTSIDE = "198.51.100.7"  # the peer namespace's address on no network the box is on

# Run in the peer namespace: GET each URL (from SOURCE when given, the box's own
# certificate not checked: the test is about reachability, not trust) and print one JSON
# line per URL: its status, or the error; with --fetch-hls, the HLS stream's first
# variant, its init segment and two media segments, concatenated, as Base64.
PEER_GET = r"""
import base64, http.client, json, ssl, sys, urllib.parse
source, token, timeout, urls = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
ctx = ssl._create_unverified_context()
def get(url):
    u = urllib.parse.urlsplit(url)
    kw = {"timeout": timeout, "source_address": (source, 0) if source else None}
    c = (http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, **kw) if u.scheme == "https"
         else http.client.HTTPConnection(u.hostname, u.port or 80, **kw))
    c.request("GET", u.path + ("?" + u.query if u.query else ""),
              headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse()
    return r.status, r.read()
if urls[0] == "--fetch-hls":
    base = urls[1].rsplit("/", 1)[0] + "/"
    _, master = get(urls[1])
    variant = next(l for l in master.decode().splitlines() if l and not l.startswith("#"))
    _, media = get(base + variant)
    vbase = (base + variant).rsplit("/", 1)[0] + "/"
    text = media.decode()
    init = text.split('#EXT-X-MAP:URI="', 1)[1].split('"', 1)[0]
    segs = [l for l in text.splitlines() if l and not l.startswith("#")][:2]
    out = b"".join(get(vbase + u)[1] for u in [init] + segs)
    print(json.dumps({"bytes": base64.b64encode(out).decode(), "segments": len(segs)}))
    sys.exit(0)
for url in urls:
    try:
        status, body = get(url)
        print(json.dumps({"url": url, "status": status, "body": body.decode("utf-8", "replace")[:2000]}))
    except Exception as e:
        print(json.dumps({"url": url, "error": repr(e)}))
"""


def peer_get(vm, urls, source="", token="", timeout=5):
    """The answers to GET `urls` from the peer namespace (see PEER_GET), by URL."""
    _, out, _ = vm.run(["/sbin/ip", "netns", "exec", "peer", "/usr/bin/python3", "-c", PEER_GET,
                        source, token, str(timeout), *urls], timeout=timeout * len(urls) + 60)
    return {a["url"]: a for a in map(json.loads, out.strip().splitlines())}


def status_of(vm, url, **kw):
    a = peer_get(vm, [url], **kw)[url]
    return a.get("status", a.get("error"))


def hardware_checks(vm, browser, base):
    """Issue 19 on the box: the distribution kernel's virtual devices (vivid for V4L2
    capture, snd-aloop for ALSA) appear in the inventory, on the page and in the API, and
    a device removed or added shows within 2 s."""
    api = Api(browser, base)
    vm.run(["/sbin/modprobe", "snd-aloop"])
    vm.run(["/sbin/modprobe", "vivid", "n_devs=1"])

    def vivid():
        status, hw = api("GET", "/api/hardware")
        if status != 200:
            raise Failed(f"GET /api/hardware: {status} {hw}")
        return next((d for d in hw["video"] if d["driver"] == "vivid"), None), hw

    wait_for("vivid in /api/hardware", 10, lambda: vivid()[0])
    device, hw = vivid()
    _, listed, _ = vm.run(["/sbin/runuser", "-u", "streambox", "--", "/usr/bin/streambox",
                           "--config", "/etc/streambox/streambox.toml", "hw", "list"])
    lines = listed.rstrip().splitlines()
    print(f"hardware: streambox hw list in the box ({len(lines)} lines), its first:\n"
          + "\n".join(l[:160] for l in lines[:8]), flush=True)
    check(any(l.startswith(f"video\t{device['id']}\t") for l in lines), "hw list names vivid by its stable ID")
    check(any(l.startswith("audio\thw:CARD=Loopback,DEV=0\t") for l in lines), "and the Loopback PCM")
    check(device["id"].startswith("platform-vivid") and device["node"].startswith("/dev/video"),
          f"vivid is listed by its stable ID ({device['id']} at {device['node']})")
    check(device["error"] is None, f"the service may open it ({device['error']})")
    fourccs = {f["fourcc"] for f in device["formats"]}
    check("YUYV" in fourccs, f"vivid offers YUYV ({sorted(fourccs)})")
    sizes = next(f["sizes"] for f in device["formats"] if f["fourcc"] == "YUYV")
    check(sizes["kind"] == "discrete" and any(s["width"] == 1280 and s["height"] == 720 for s in sizes["sizes"])
          or sizes["kind"] == "range", f"YUYV's sizes are listed ({str(sizes)[:200]})")
    loopback = [p["alsa"] for c in hw["sound"] if c["driver"] == "Loopback" for p in c["captures"]]
    check("hw:CARD=Loopback,DEV=0" in loopback, f"snd-aloop's capture PCMs are listed ({loopback})")
    status, _, page = browser.request("GET", f"{base}/admin/hardware")
    check(status == 200 and device["id"] in page and "hw:CARD=Loopback,DEV=0" in page,
          f"the hardware page lists them ({status})")
    check('data-refresh="1"' in page, "the page redraws its list every second")

    # What the device sees: V4L2 streaming I/O (memory-mapped buffers) for one frame.
    snap = f"{base}/api/hardware/video/{urllib.parse.quote(device['id'], safe='')}/snapshot"
    t0 = time.monotonic()
    status, headers, jpeg = browser.request("GET", snap, timeout=30, raw=True)
    took = time.monotonic() - t0
    check(status == 200 and headers.get("Content-Type") == "image/jpeg",
          f"a snapshot of vivid ({status} {headers.get('Content-Type')} {jpeg[:200]!r})")
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                        "-of", "json", "-"], input=jpeg, capture_output=True)
    shot = json.loads(r.stdout or b"{}").get("streams", [{}])[0]
    print(f"hardware: a {shot.get('width')}x{shot.get('height')} snapshot of vivid in {took:.2f} s "
          f"({len(jpeg)} bytes)", flush=True)
    check(shot.get("codec_name") == "mjpeg" and shot.get("width", 0) >= 320,
          f"the snapshot is a JPEG at least 320 wide ({shot})")
    # Another program claims the device's buffers (VIDIOC_REQBUFS): the snapshot says busy.
    holder = ("import fcntl, os, struct, sys, time\n"
              "fd = os.open(sys.argv[1], os.O_RDWR)\n"
              "fcntl.ioctl(fd, 0xc0145608, bytearray(struct.pack('IIIIB3x', 2, 1, 1, 0, 0)))\n"
              "time.sleep(6)\n")
    pid = vm.spawn(["/usr/bin/python3", "-c", holder, device["node"]])
    time.sleep(2)
    status, _, body = browser.request("GET", snap, timeout=30)
    check(status == 409 and "busy" in body, f"a device another program captures from is busy ({status} {body})")
    vm.wait_exit(pid, 30)
    status, _, body = browser.request("GET", f"{base}/api/hardware/video/nothing/snapshot")
    check(status == 404, f"an unknown device's snapshot is 404 ({status} {body})")

    def timed(what, argv, gone):
        vm.run(argv)
        start = time.monotonic()
        while time.monotonic() - start < 10:
            now = vivid()[0]
            if (now is None) == gone:
                took = time.monotonic() - start
                print(f"hardware: {what} shown {took:.2f} s after modprobe returned", flush=True)
                return took
            time.sleep(0.05)
        raise Failed(f"{what}: not shown within 10 s")

    took = timed("vivid removed", ["/sbin/modprobe", "-r", "vivid"], True)
    check(took <= 2.0, f"an unplugged capture device leaves the inventory within 2 s ({took:.2f} s)")
    _, _, page = browser.request("GET", f"{base}/admin/hardware")
    check(device["id"] not in page, "and the page")
    took = timed("vivid added", ["/sbin/modprobe", "vivid", "n_devs=1"], False)
    check(took <= 2.0, f"a plugged-in capture device appears within 2 s ({took:.2f} s)")
    check(vivid()[0]["id"] == device["id"], "with the same stable ID")

    # A GPU render node (vgem, the kernel's virtual GEM device, has one): listed within
    # 2 s with what libva says of it; the image ships no libva (no GPU driver to give
    # it), so it says so, and the service asked in a child process of its own.
    def gpus():
        return [g for g in api("GET", "/api/hardware")[1]["gpus"] if g["kind"] == "vaapi"]
    vm.run(["/sbin/modprobe", "vgem"])
    t0 = time.monotonic()
    listed = wait_for("vgem's render node in /api/hardware", 10, gpus)
    took = time.monotonic() - t0
    print(f"hardware: vgem's render node listed {took:.2f} s after modprobe returned: {listed}", flush=True)
    check(took <= 2.0, f"a GPU appears within 2 s ({took:.2f} s)")
    check(listed[0]["node"].startswith("/dev/dri/renderD") and listed[0]["vaapi_error"] == "libva is not installed",
          f"with what libva says of it ({listed[0]})")
    _, _, page = browser.request("GET", f"{base}/admin/hardware")
    check("VA-API: libva is not installed" in page, "the page says so")
    vm.run(["/sbin/modprobe", "-r", "vgem"])
    wait_for("vgem gone", 10, lambda: not gpus())


def capture_checks(vm, browser, base):
    """Issue 19: vivid as a live source. Added over the API (a size it does not offer is
    refused with what it offers), played from the host over HLS and DASH at the size
    and rate asked, recorded; unplugged (its driver unbound from the device, as a USB
    disconnect does) it goes offline and its recording closes, and plugged in again it
    comes back by itself."""
    api = Api(browser, base)
    _, hw = api("GET", "/api/hardware")
    device = next(d for d in hw["video"] if d["driver"] == "vivid")
    yuyv = next(f for f in device["formats"] if f["fourcc"] == "YUYV")["sizes"]
    # The smallest size, at the rate nearest 15 fps it offers there: TCG is slow.
    small = min(yuyv["sizes"], key=lambda s: s["width"])
    rates = [r["num"] / r["den"] for r in small["rates"]["rates"]]
    fps = min(rates, key=lambda r: abs(r - 15))
    size = f"{small['width']}x{small['height']}"
    status, body = api("POST", "/api/captures", {"name": "stage", "device": device["id"], "size": "1000x1000"})
    check(status == 422 and "does not offer 1000x1000; it offers YUYV" in body.get("error", ""),
          f"a size vivid does not offer is refused with what it offers ({status} {str(body)[:300]})")
    status, body = api("POST", "/api/captures",
                       {"name": "stage", "device": device["id"], "size": size, "fps": f"{fps:g}"})
    check(status == 201, f"a capture source added ({status} {body})")
    added = time.monotonic()
    print(f"capture: {body['message']}", flush=True)
    check(f"YUYV {size} at {fps:g} fps, encoded to H.264" in body["message"],
          f"raw YUYV is chosen and encoded ({body['message']})")
    for path, b in (("visibility", {"visibility": "public"}), ("recording", {"enabled": True})):
        status, answer = api("PUT", f"/api/streams/stage/{path}", b)
        check(status == 200, f"PUT {path} ({status} {answer})")

    def state():
        _, d = api("GET", "/api/streams/stage")
        return d

    def live():
        d = state()
        return d if d["capture"]["state"] == "live" and d["live"] else None

    d = wait_for("the capture source live", 60, live)
    took = time.monotonic() - added
    print(f"capture: live {took:.1f} s after it was added: {d['capture']['format']}", flush=True)
    http_base = f"http://127.0.0.1:{vm.port[80]}"
    playlist = f"{http_base}/live/stage/index.m3u8"
    probe = wait_for("the capture source over HLS", 60, lambda: ffprobe_video(playlist))
    check((probe.get("width"), probe.get("height")) == (small["width"], small["height"]),
          f"HLS plays it at {size} ({probe})")
    num, den = map(int, probe.get("r_frame_rate", "0/1").split("/"))
    check(abs(num / den - fps) < 0.5, f"at {fps:g} fps ({probe.get('r_frame_rate')})")
    # vivid stamps a buffer when its thread fills it, late by however long TCG kept the
    # thread waiting; the service places frames on the device's frame grid, so every
    # step is whole frame periods (more than one where vivid dropped frames).
    steps = frame_steps(playlist, 6)
    periods = [s * fps for s in steps]
    off = [p for p in periods if p < 0.5 or abs(p - round(p)) > 0.01]
    print(f"capture: {len(steps)} frame steps over HLS, {sum(round(p) - 1 for p in periods)} periods skipped",
          flush=True)
    check(len(steps) >= 2 * fps and not off,
          f"frames are whole periods apart ({len(steps)} steps, off the grid: {off[:5]})")
    r = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", playlist, "-t", "6", "-f", "null", "-"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"ffmpeg -xerror plays 6 s of it over HLS ({r.stderr[-500:]})")
    dash = ffprobe_video(f"{http_base}/live/stage/manifest.mpd")
    check(dash and dash.get("width") == small["width"], f"and over DASH ({dash})")
    snap = f"{base}/api/hardware/video/{urllib.parse.quote(device['id'], safe='')}/snapshot"
    status, _, body = browser.request("GET", snap, timeout=30)
    check(status == 409, f"a snapshot while the source captures says busy ({status} {body[:200]})")
    # From the driver's capture timestamp to the part and segment being listed (the
    # service's own histograms; the frames keep the time the driver stamped them with).
    status, _, metrics = browser.request("GET", f"{base}/metrics")
    means = {}
    for kind in ("part", "segment"):
        got = {}
        for stat in ("sum", "count"):
            m = re.search(rf'^streambox_{kind}_delay_seconds_{stat}{{stream="stage",track="video"}} (\S+)$',
                          metrics, re.M)
            got[stat] = float(m.group(1)) if m else 0.0
        means[kind] = got["sum"] / got["count"] if got["count"] else None
    print(f"capture: from the driver's timestamp to listed, mean: part {means['part']} s, "
          f"segment {means['segment']} s (QEMU TCG)", flush=True)
    check(status == 200 and means["segment"] is not None, f"the delays are measured ({status})")
    # vivid drops a fifth of its buffers for a while (its "Percentage of Dropped
    # Buffers" control): the gaps in its frame counter are counted, and it plays on.
    _, before = api("GET", "/api/streams/stage")
    vm.run(["/usr/bin/python3", "-c", VIVID_CONTROL, device["node"], "dropped buffers", "20"])
    time.sleep(6)
    vm.run(["/usr/bin/python3", "-c", VIVID_CONTROL, device["node"], "dropped buffers", "0"])
    d = wait_for("dropped frames counted", 20,
                 lambda: (lambda d: d if d["capture"]["dropped_frames"] > before["capture"]["dropped_frames"]
                          else None)(state()))
    print(f"capture: {d['capture']['dropped_frames'] - before['capture']['dropped_frames']} frames "
          f"dropped by vivid counted; {d['capture']['format']}", flush=True)
    check(d["live"] and d["capture"]["state"] == "live", "and the source stayed live")

    # Unplugged: the driver lets go of the device while the source holds it open.
    unplug = "/sys/bus/platform/drivers/vivid/unbind"
    vm.run(["/bin/sh", "-c", f"echo vivid.0 > {unplug}"])
    t0 = time.monotonic()
    d = wait_for("the source unplugged", 30,
                 lambda: (lambda d: d if d["capture"]["state"] == "unplugged" and not d["live"] else None)(state()))
    took = time.monotonic() - t0
    print(f"capture: offline and 'unplugged' {took:.2f} s after the device went "
          f"(dropped frames so far: {d['capture']['dropped_frames']})", flush=True)
    check(took <= 5, f"an unplugged device's source goes offline within 5 s ({took:.2f} s)")
    check("device unplugged" in d["detail"] or d["capture"]["last_error"] == "device unplugged",
          f"and says 'device unplugged' ({d['detail']}; {d['capture']['last_error']})")
    check(d["recordings"], f"it was recorded ({d['recordings']})")
    _, listed, _ = vm.run(["/sbin/runuser", "-u", "streambox", "--", "/usr/bin/streambox",
                           "--config", "/etc/streambox/streambox.toml", "dvr", "ranges", "stage"])
    print(f"capture: recorded ranges:\n{listed.strip()}", flush=True)
    check(listed.strip() != "", "the recording's segment was closed and indexed")

    vm.run(["/bin/sh", "-c", "echo vivid.0 > /sys/bus/platform/drivers/vivid/bind"])
    t0 = time.monotonic()
    wait_for("the source live again", 60, live)
    took = time.monotonic() - t0
    print(f"capture: live again {took:.2f} s after the device came back", flush=True)
    check(took <= 15, f"the source comes back by itself within 15 s ({took:.2f} s)")
    probe = wait_for("HLS again", 60, lambda: ffprobe_video(playlist))
    check(probe.get("width") == small["width"], f"and plays over HLS again ({probe})")

    # Sound: a 440 Hz tone played into snd-aloop's playback side (device 0), captured
    # from its capture side (device 1) by the source, and heard in what viewers get.
    fields = {"device": device["id"], "size": size, "fps": f"{fps:g}"}
    status, body = api("PUT", "/api/streams/stage/capture", dict(fields, audio="hw:CARD=Nope,DEV=0"))
    check(status == 422 and "hw:CARD=Loopback,DEV=1" in body.get("error", ""),
          f"a sound card the box does not have is refused with those it has ({status} {body})")
    tone = vm.spawn(["/usr/bin/speaker-test", "-D", "hw:CARD=Loopback,DEV=0", "-t", "sine", "-f", "440",
                     "-c", "2", "-r", "48000", "-F", "S16_LE"])
    status, body = api("PUT", "/api/streams/stage/capture", dict(fields, audio="hw:CARD=Loopback,DEV=1"))
    check(status == 200 and "with sound from hw:CARD=Loopback,DEV=1 as AAC-LC" in body.get("message", ""),
          f"sound added to the capture source ({status} {body})")
    t0 = time.monotonic()
    d = wait_for("the source live with sound", 60,
                 lambda: (lambda d: d if d and "sound 48000 Hz" in d["capture"]["format"] else None)(live()))
    print(f"capture: live with sound {time.monotonic() - t0:.1f} s after the change: "
          f"{d['capture']['format']}", flush=True)
    check(d["capture"]["audio"] == "hw:CARD=Loopback,DEV=1", f"the API shows the sound card ({d['capture']})")

    def probe_audio():
        """The playlist's audio and video streams once its window is all the source with
        sound (the segments from before the change carry pictures alone): their first
        timestamps within half a second."""
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_type,codec_name,sample_rate,channels,start_time", "-of", "json",
                            playlist], capture_output=True, text=True, timeout=60)
        streams = json.loads(r.stdout or "{}").get("streams", []) if r.returncode == 0 else []
        a = next((x for x in streams if x.get("codec_type") == "audio"), None)
        v = next((x for x in streams if x.get("codec_type") == "video"), None)
        if not (a and v and a.get("start_time") and v.get("start_time")):
            return None
        apart = abs(float(a["start_time"]) - float(v["start_time"]))
        return (a, apart) if apart < 0.5 else None
    t0 = time.monotonic()
    audio, apart = wait_for("a playlist with sound from its first segment", 90, probe_audio)
    print(f"capture: the playlist had sound from its first segment {time.monotonic() - t0:.1f} s later; "
          f"its first audio and video timestamps {apart * 1000:.0f} ms apart", flush=True)
    check(audio.get("codec_name") == "aac" and audio.get("sample_rate") == "48000" and audio.get("channels") == 2,
          f"HLS carries the sound as 48 kHz stereo AAC ({audio})")
    def volume(band):
        """The mean volume (dB) of 4 s of the sound over HLS through the filter `band`."""
        r = subprocess.run(["ffmpeg", "-v", "info", "-xerror", "-i", playlist, "-t", "4", "-map", "0:a:0",
                            "-af", f"{band}volumedetect", "-f", "null", "-"],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"mean_volume: (-?[\d.]+) dB", r.stderr)
        check(r.returncode == 0 and m, f"ffmpeg measures the sound over HLS ({r.stderr[-400:]})")
        return float(m.group(1))
    whole, at_440, above = volume(""), volume("bandpass=f=440:width_type=q:w=4,"), \
        volume("highpass=f=1500,highpass=f=1500,")
    print(f"capture: the sound's mean volume over HLS: {whole} dB; around 440 Hz {at_440} dB, "
          f"above 1.5 kHz {above} dB", flush=True)
    if whole <= -40:
        # What the sound card and the service were doing.
        _, log, _ = vm.run(["/bin/sh", "-c",
                            "for f in /proc/asound/Loopback/cable#0 /proc/asound/Loopback/pcm1c/sub*/status "
                            "/proc/asound/Loopback/pcm1c/sub*/hw_params /proc/asound/Loopback/pcm0p/sub0/status; "
                            "do echo \"== $f\"; cat \"$f\"; done; "
                            "grep -l speaker-test /proc/[0-9]*/cmdline; "
                            "journalctl -b -o short-monotonic --no-pager -u streambox | grep -i 'capture\\|sound\\|audio' | tail -40"],
                           check_rc=False)
        print(f"the sound card and the service:\n{log}", flush=True)
        _, d = api("GET", "/api/streams/stage")
        print(f"the source now: {d.get('capture')}", flush=True)
    check(whole > -40, f"the tone is heard over HLS, not silence ({whole} dB)")
    check(at_440 - above > 20, f"and it is the 440 Hz tone played ({at_440} dB against {above} dB)")
    dash = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                           "stream=codec_name", "-of", "csv=p=0", f"{http_base}/live/stage/manifest.mpd"],
                          capture_output=True, text=True, timeout=60)
    check(set(dash.stdout.split()) == {"aac"}, f"and over DASH ({dash.stdout.split()} {dash.stderr[-200:]})")
    # Recorded with its sound: the last 6 s exported as one MP4 with both tracks.
    time.sleep(4)
    _, _, listed = browser.request("GET", f"{base}/dvr/stage/recordings.json")
    last = json.loads(listed)["ranges"][-1]
    end = datetime.datetime.fromisoformat(last["end"].replace("Z", "+00:00"))
    start = (end - datetime.timedelta(seconds=6)).isoformat().replace("+00:00", "Z")
    query = urllib.parse.urlencode({"start": start, "end": last["end"]})
    status, _, mp4 = browser.request("GET", f"{base}/dvr/stage/export.mp4?{query}", timeout=120, raw=True)
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(mp4)
        f.flush()
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                            f.name], capture_output=True, text=True, timeout=60)
    codecs = sorted(r.stdout.split())
    check(status == 200 and codecs == ["aac", "h264"],
          f"the recording exports as MP4 with its pictures and sound ({status}, {codecs}, {len(mp4)} bytes)")
    vm.run(["/usr/bin/python3", "-c", f"import os; os.kill({tone}, 15)"], check_rc=False)

    status, _ = api("DELETE", "/api/streams/stage")
    check(status == 204, f"the capture source removed ({status})")
    ok = wait_for("the device free again", 15,
                  lambda: browser.request("GET", snap, timeout=30)[0] == 200)
    check(ok, "the device is free once its source is removed")


# Sets a V4L2 control found by (part of) its name: argv = node, name, value
# (VIDIOC_QUERYCTRL with V4L2_CTRL_FLAG_NEXT_CTRL, then VIDIOC_S_CTRL).
VIVID_CONTROL = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
cid = 0
while True:
    q = bytearray(struct.pack("II32s4iI2I", cid | 0x80000000, 0, b"", 0, 0, 0, 0, 0, 0, 0))
    try:
        fcntl.ioctl(fd, 0xc0445624, q)
    except OSError:
        sys.exit("no control named " + sys.argv[2])
    cid = struct.unpack_from("I", q)[0]
    name = struct.unpack_from("32s", q, 8)[0].split(b"\\0")[0].decode()
    if sys.argv[2].lower() in name.lower():
        fcntl.ioctl(fd, 0xc008561c, bytearray(struct.pack("Ii", cid, int(sys.argv[3]))))
        print(name)
        break
"""


def frame_steps(url, seconds):
    """The steps between the first video stream's successive presentation times over
    `seconds` of `url`, in seconds (in presentation order)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", f"%+{seconds}",
                        "-show_entries", "packet=pts_time", "-of", "csv=p=0", url],
                       capture_output=True, text=True, timeout=120)
    pts = sorted(float(l) for l in r.stdout.split() if l.strip() not in ("", "N/A"))
    return [b - a for a, b in zip(pts, pts[1:])]


def ffprobe_video(url):
    """The first video stream's codec, size and rate at `url`, or None."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "stream=codec_name,width,height,r_frame_rate,avg_frame_rate", "-of", "json", url],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    streams = json.loads(r.stdout or "{}").get("streams", [])
    return streams[0] if streams and streams[0].get("codec_name") == "h264" else None


def vpn_checks(vm, browser, base, api):
    """Issue 18 on the box: remote access over WireGuard with a peer brought up by wg-quick
    in the peer namespace, the admin API and a live stream's HLS over the tunnel, a
    disabled or removed peer refused at once, and the admin pages refused from an address
    outside the LAN and the VPN while the portal answers it."""
    # Bad settings: refused with the reason, nothing set up.
    vm.spawn(["/usr/bin/python3", "-c", "import socket, time; s = socket.socket(socket.AF_INET, "
              "socket.SOCK_DGRAM); s.bind(('0.0.0.0', 51999)); time.sleep(120)"])
    time.sleep(1)
    for body, why in (({"enabled": True, "subnet4": "10.77.0.0/24", "subnet6": VPN6}, "overlap"),
                      ({"enabled": True, "port": 51999, "subnet4": VPN4, "subnet6": VPN6}, "in use"),
                      ({"enabled": True, "endpoint": "vpn example", "subnet4": VPN4}, "not a host")):
        status, answer = api("PUT", "/api/vpn", body)
        check(status == 422 and why in str(answer), f"VPN refused: {why} ({status} {answer})")
    rc, _, _ = vm.run(["/sbin/ip", "link", "show", "wg-streambox"], check_rc=False)
    check(rc != 0, "no VPN interface after the refusals")

    t0 = time.monotonic()
    status, view = api("PUT", "/api/vpn", {"enabled": True, "subnet4": VPN4, "subnet6": VPN6,
                                           "endpoint": "10.77.0.1"})
    print(f"vpn: on {time.monotonic() - t0:.1f} s after the PUT", flush=True)
    check(status == 200 and view["settings"]["enabled"] and view["endpoint"] == "10.77.0.1:51820",
          f"remote access on ({status} {view})")
    box_key = view["public_key"]
    _, dump, _ = vm.run(["/usr/bin/wg", "show", "wg-streambox", "dump"])
    check(dump.split("\t")[1] == box_key and dump.split("\t")[2] == "51820",
          f"the kernel's interface has the box's key and port ({dump.split(chr(9))[1:3]})")
    _, perms, _ = vm.run(["/bin/stat", "-c", "%U %a", "/mnt/state/host/wireguard",
                          "/mnt/state/host/wireguard/private.key"])
    check(perms.split() == ["root", "700", "root", "600"], f"the box's private key is root's alone ({perms.split()})")
    rc, _, _ = vm.run(["/sbin/runuser", "-u", "streambox", "--", "/bin/cat",
                       "/mnt/state/host/wireguard/private.key"], check_rc=False)
    check(rc != 0, "the service cannot read the box's private key")

    status, anna = api("POST", "/api/vpn/peers", {"name": "Anna's laptop"})
    check(status == 201 and "PrivateKey = " in anna["config"] and anna["qr_svg"].lstrip().startswith("<?xml"),
          f"a peer is added with its configuration and QR code ({status} {anna.get('file_name')})")
    check(anna["file_name"] == "anna-s-laptop.conf", f"its file is named for it ({anna['file_name']})")
    status, _ = api("POST", "/api/vpn/peers", {"name": "Anna's laptop"})
    check(status == 409, f"a second peer of the same name is refused ({status})")
    status, answer = api("POST", "/api/vpn/peers", {"name": "Ben", "public_key": "not a key"})
    check(status == 422 and "not a WireGuard key" in str(answer), f"a malformed public key is refused ({answer})")
    _, ben_key, _ = vm.run(["/bin/sh", "-c", "wg genkey | wg pubkey"])
    status, ben = api("POST", "/api/vpn/peers", {"name": "Ben", "public_key": ben_key.strip()})
    check(status == 201 and not re.search(r"^PrivateKey", ben["config"], re.M) and ben["qr_svg"] is None,
          f"a peer with its own key gets a file without a private key ({status})")
    _, peers, _ = vm.run(["/usr/bin/wg", "show", "wg-streambox", "peers"])
    check(set(peers.split()) == {anna["peer"]["public_key"], ben_key.strip()}, "the kernel has both peers")

    # Anna's laptop: the downloaded file, brought up with wg-quick in the peer namespace.
    conf = base64.b64encode(anna["config"].encode()).decode()
    vm.run(["/bin/sh", "-c", f"umask 077 && echo {conf} | base64 -d > /run/sbxp.conf"])
    t0 = time.monotonic()
    vm.run(["/sbin/ip", "netns", "exec", "peer", "/usr/bin/wg-quick", "up", "/run/sbxp.conf"])
    status, token = api("POST", "/api/tokens", {"name": "over the vpn"})
    token = token["token"]
    got = wait_for("the admin API over the tunnel", 30,
                   lambda: status_of(vm, f"https://{VPN_BOX}/api/vpn", token=token) == 200 or None)
    print(f"vpn: the admin API answered over the tunnel {time.monotonic() - t0:.1f} s after wg-quick up",
          flush=True)
    a = peer_get(vm, ["https://[fd99:0:0:1::1]/api/session", f"https://{VPN_BOX}/login"], token=token)
    check(a["https://[fd99:0:0:1::1]/api/session"].get("status") == 200,
          f"and at the box's IPv6 VPN address ({a['https://[fd99:0:0:1::1]/api/session']})")
    check(a[f"https://{VPN_BOX}/login"].get("status") == 200,
          f"the sign-in page answers over the VPN ({a[f'https://{VPN_BOX}/login'].get('status')})")

    # A live stream's HLS over the tunnel.
    _, made = api("POST", "/api/streams", {"name": "field"})
    publisher = publish(vm, "field", made["key"])
    playlist = f"http://{VPN_BOX}/live/field/video.m3u8"

    def two_segments():
        a = peer_get(vm, [playlist])[playlist]
        return a.get("status") == 200 and a["body"].count("#EXTINF") >= 2

    try:
        wait_for("two of the stream's segments over the tunnel", 60, two_segments)
        _, out, _ = vm.run(["/sbin/ip", "netns", "exec", "peer", "/usr/bin/python3", "-c", PEER_GET,
                            "", "", "10", "--fetch-hls", f"http://{VPN_BOX}/live/field/index.m3u8"],
                           timeout=120)
    finally:
        publisher.kill()
        publisher.wait()
    fetched = json.loads(out)
    media = os.path.join(vm.work, "over-vpn.mp4")
    with open(media, "wb") as f:
        f.write(base64.b64decode(fetched["bytes"]))
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width",
                        "-of", "json", media], capture_output=True, text=True)
    d = subprocess.run(["ffmpeg", "-v", "error", "-i", media, "-f", "null", "-"], capture_output=True, text=True)
    check(r.returncode == 0 and '"h264"' in r.stdout and d.returncode == 0 and d.stderr.strip() == "",
          f"a live stream's HLS plays over the tunnel ({fetched['segments']} segments, "
          f"{os.path.getsize(media)} bytes: {r.stdout.split()} {d.stderr.strip()[:200]})")

    # The list: handshake and counters from the kernel; the page shows them.
    _, view = api("GET", "/api/vpn")
    mine = next(p for p in view["peers"] if p["name"] == "Anna's laptop")
    check(mine["latest_handshake"] is not None and mine["rx_bytes"] > 0 and mine["tx_bytes"] > 0
          and mine["endpoint"] and mine["endpoint"].startswith("10.77.0.2:"),
          f"the list has Anna's handshake, traffic and endpoint ({mine})")
    status, _, page = browser.request("GET", f"{base}/admin/vpn")
    check(status == 200 and page.count('class="peer"') == 2 and "laptop" in page
          and mine["latest_handshake"] in page,
          "the Remote access page lists the peers, with Anna's handshake")

    # Outside the LAN and the VPN: the admin pages refuse, the portal answers.
    vm.run(["/bin/sh", "-c", f"ip -n peer addr add {OUTSIDE}/32 dev sbv1 && "
            f"ip route add {OUTSIDE}/32 dev sbv0"])
    a = peer_get(vm, ["https://10.77.0.1/login", "https://10.77.0.1/api/session", "http://10.77.0.1/"],
                 source=OUTSIDE)
    check(a["https://10.77.0.1/login"].get("status") == 403
          and a["https://10.77.0.1/api/session"].get("status") == 403,
          f"from {OUTSIDE} the admin pages and the API are refused ({a['https://10.77.0.1/login'].get('status')}, "
          f"{a['https://10.77.0.1/api/session'].get('status')})")
    check(a["http://10.77.0.1/"].get("status") == 200, f"while the portal answers it ({a['http://10.77.0.1/']})")
    check(status_of(vm, "https://10.77.0.1/login") == 200, "the same page answers from the LAN")
    _, log, _ = vm.run(["/bin/sh", "-c", "journalctl -u streambox --no-pager -o cat "
                        "| grep 'outside the LAN and the VPN' | tail -3"])
    check(f"client={OUTSIDE} " in log, f"the refusal is logged ({log.strip()[-300:]})")

    # Disabled: refused at once; enabled: back; removed: refused at once.
    pid = mine["id"]
    status, _ = api("PUT", f"/api/vpn/peers/{pid}", {"enabled": False})
    check(status == 200, f"Anna's laptop disabled ({status})")
    check(status_of(vm, f"https://{VPN_BOX}/api/session", token=token) != 200,
          "a disabled peer's tunnel is refused at once")
    api("PUT", f"/api/vpn/peers/{pid}", {"enabled": True})
    wait_for("the tunnel again after enabling", 60,
             lambda: status_of(vm, f"https://{VPN_BOX}/api/session", token=token) == 200 or None)
    status, _ = api("DELETE", f"/api/vpn/peers/{pid}")
    check(status == 204, f"Anna's laptop removed ({status})")
    check(status_of(vm, f"https://{VPN_BOX}/api/session", token=token) != 200,
          "a removed peer's tunnel is refused at once")
    _, peers, _ = vm.run(["/usr/bin/wg", "show", "wg-streambox", "peers"])
    check(peers.split() == [ben_key.strip()], f"the kernel has Ben only ({peers.split()})")
    vm.run(["/sbin/ip", "netns", "exec", "peer", "/usr/bin/wg-quick", "down", "/run/sbxp.conf"])
    _, audit = api("GET", "/api/audit?limit=50")
    actions = {e["action"] for e in audit}
    check({"vpn.settings", "vpn.peer.add", "vpn.peer.disable", "vpn.peer.enable", "vpn.peer.remove"} <= actions,
          f"the audit log has the VPN's changes ({sorted(a for a in actions if a.startswith('vpn'))})")
    return ben_key.strip()


def network_checks(vm, browser, base):
    """Issue 17 on the box: static IPv4 and IPv6 on the second NIC through the API,
    confirmed from the new address and kept across a reboot, with a new name; a change not confirmed
    reverts by itself, also across a reboot in the middle; bad input changes nothing;
    the privileged path is only the helper, which has CAP_NET_ADMIN alone."""
    api = Api(browser, base)
    status, view = api("GET", "/api/network")
    check(status == 200 and view.get("configured") is not None,
          f"GET /api/network reads netplan's configuration ({status} {view and view.get('unavailable')})")
    _, links, _ = vm.run(["/sbin/ip", "-o", "link"])
    nic = next((l.split(":")[1].strip() for l in links.splitlines() if LAN2_MAC in l), None)
    check(nic in view["links"], f"the second NIC ({nic}) is among the links {view['links']}")
    before = view["configured"]

    # Bad input: refused with the reason, and the configuration is as it was.
    bad = [
        ({"interface": nic, "ipv4": {"mode": "static", "address": "192.168.76.20", "prefix": 24,
                                     "gateway": "192.168.77.1"}, "ipv6": {"mode": "slaac"}}, "not reachable"),
        ({"interface": nic, "ipv4": {"mode": "static", "address": "192.168.76.2", "prefix": 24,
                                     "gateway": "192.168.76.2"}, "ipv6": {"mode": "slaac"}}, "own address"),
        ({"interface": nic, "ipv4": {"mode": "dhcp"}, "ipv6": {"mode": "static", "address": "fd00:76::20",
                                                              "prefix": 200}}, "1-128"),
        ({"interface": "enp9s9", "ipv4": {"mode": "dhcp"}, "ipv6": {"mode": "slaac"}}, "no network interface"),
    ]
    for body, why in bad:
        status, answer = api("PUT", "/api/network", {"wired": [body]})
        check(status == 422 and why in str(answer), f"refused: {why} ({status} {answer})")
    _, view = api("GET", "/api/network")
    check(view["configured"] == before and view["trial"] is None, "bad input changed nothing")

    # A static IPv4 and IPv6 address, on trial, confirmed from the new address.
    static = {"interface": nic,
              "ipv4": {"mode": "static", "address": LAN2_STATIC, "prefix": 24, "gateway": "192.168.76.2"},
              "ipv6": {"mode": "static", "address": "fd00:76::20", "prefix": 64, "gateway": "fd00:76::2"},
              "dns": ["192.168.76.3"], "search": ["hall.example"]}
    t0 = time.monotonic()
    status, trial = api("PUT", "/api/network", {"wired": [static], "confirm_within": 90}, timeout=120)
    print(f"network: the change was in force {time.monotonic() - t0:.1f} s after the PUT", flush=True)
    check(status == 202 and f"https://{LAN2_STATIC}/" in trial.get("open", []),
          f"the change is on trial, and the answer says where to confirm it ({status} {trial})")
    status, answer = api("PUT", "/api/network", {"wired": [dict(static, dns=[])]})
    check(status == 409 and "already being tried" in str(answer),
          f"a second change meanwhile is refused ({status} {answer})")
    got = addresses_of(vm, nic)
    check({f"{LAN2_STATIC}/24", "fd00:76::20/64"} <= got, f"the kernel has the new addresses ({got})")
    lan2 = f"https://127.0.0.1:{vm.lan2[LAN2_STATIC]}"
    wait_for("the admin API at the new address", 60, lambda: answers(browser, f"{lan2}/api/session"))
    status, answer = Api(browser, lan2)("POST", "/api/network/confirm")
    check(status == 200 and answer.get("outcome") == "confirmed",
          f"confirmed from https://{LAN2_STATIC}/ ({status} {answer})")
    time.sleep(2)
    check({f"{LAN2_STATIC}/24", "fd00:76::20/64"} <= addresses_of(vm, nic), "the addresses stay once confirmed")
    name_checks(vm, api)
    registration_checks(vm, browser, base, api)
    ben = vpn_checks(vm, browser, base, api)

    vm.shutdown()
    vm.start()
    took, _ = wait_wizard(vm, browser, 300, path="/api/session")
    print(f"network: after a reboot the API answered {took:.1f} s after power-on", flush=True)
    vm.wait_agent(60)
    _, kernel, _ = vm.run(["/bin/cat", "/proc/sys/kernel/hostname"])
    check(kernel.strip() == "studio", f"the name survives a reboot ({kernel.strip()})")
    check(ntp_servers(vm) == NTP_SERVERS, f"the NTP servers survive a reboot ({ntp_servers(vm)})")
    wait_for("the banner to name studio.local", 30, lambda: "https://studio.local/" in vm.console_text())
    # The VPN comes back with the box, with the peer it had.
    _, peers, _ = vm.run(["/usr/bin/wg", "show", "wg-streambox", "peers"])
    got = addresses_of(vm, "wg-streambox")
    check(peers.split() == [ben] and {"10.99.0.1/24", "fd99:0:0:1::1/64"} <= got,
          f"the VPN survives a reboot ({peers.split()}, {got})")
    peer_namespace(vm)
    got = wait_mdns(vm, "studio.local", "A")
    check("10.77.0.1" in got, f"studio.local answers after the reboot ({got})")
    got = addresses_of(vm, nic)
    check({f"{LAN2_STATIC}/24", "fd00:76::20/64"} <= got, f"the static addresses after a reboot ({got})")
    _, resolv, _ = vm.run(["/usr/bin/resolvectl", "dns", nic])
    check("192.168.76.3" in resolv, f"the DNS server is in use ({resolv.strip()})")
    api = Api(browser, base)
    _, view = api("GET", "/api/network")
    mine = [w for w in view["configured"]["wired"] if w["interface"] == nic]
    check(mine == [static], f"GET /api/network shows the settings ({mine})")
    status, _, page = browser.request("GET", f"{base}/admin/network")
    section = page.split(f'id="nic-{nic}"', 1)[-1].split("</section>", 1)[0]
    check(status == 200 and f"{LAN2_STATIC}/24" in section and "streambox" in section
          and f'value="{LAN2_STATIC}"' in section,
          f"/admin/network shows {nic}'s address now and its settings in the form")
    check(f"{LAN2_STATIC}/24 (static)" in section, f"the page says {LAN2_STATIC} is static")
    first = page.split('id="live-enp0s2"', 1)[-1].split("</table>", 1)[0]
    check(re.search(r"10\.0\.2\.15/24 \(DHCP, valid \d+ h \d+ min\)", first) is not None,
          f"the page gives the first NIC's DHCP lease with its lifetime ({first[:300]})")

    # Not confirmed: the previous settings come back by themselves.
    trial_body = {"wired": [dict(static, ipv4=dict(static["ipv4"], address=LAN2_TRIAL))],
                  "confirm_within": 20}
    status, trial = api("PUT", "/api/network", trial_body, timeout=120)
    check(status == 202, f"a second change is on trial ({status} {trial})")
    check(f"{LAN2_TRIAL}/24" in addresses_of(vm, nic), "the tried address is in force")
    t0 = time.monotonic()
    try:
        wait_for("the previous address to come back", 90,
                 lambda: f"{LAN2_STATIC}/24" in (a := addresses_of(vm, nic)) and f"{LAN2_TRIAL}/24" not in a)
    except Failed:
        # (journalctl ANDs matches of different fields: -u and -t go in separate calls.)
        _, log, _ = vm.run(["/bin/sh", "-c", "journalctl -b -o short-monotonic --no-pager "
                            "-u streambox -u streambox-netplan -u systemd-networkd "
                            "-u netplan-dbus | tail -100; "
                            "journalctl -b -o short-monotonic --no-pager -t netplan | tail -30; "
                            "systemctl status --no-pager netplan-dbus | head -5; "
                            "cat /proc/uptime; ip -o addr show dev " + nic + "; "
                            "ls -l /run/netplan /etc/netplan; "
                            "ps -eo pid,etimes,args | grep -i netplan"], check_rc=False)
        print(f"the unconfirmed trial was not undone; the box's journal:\n{log}", flush=True)
        raise
    print(f"network: reverted {time.monotonic() - t0:.1f} s after the change (confirm within 20 s)",
          flush=True)
    def ended():
        _, v = api("GET", "/api/network")
        return v if v["trial"] is None and (v.get("last") or {}).get("outcome") == "reverted" else None
    view = wait_for("the API to show the revert", 30, ended)
    # What it took: netplan's revert alone, or the helper applying the previous settings
    # again because netplan's revert left the tried address in force.
    print(f"network: the revert, as the API says: {view['last'].get('reason')}", flush=True)
    status, answer = api("POST", "/api/network/confirm")
    check(status == 409 and "undone" in str(answer), f"a confirmation after the revert is refused ({answer})")

    # A reboot in the middle of a trial: the box comes back with the previous settings.
    trial_body["confirm_within"] = 300
    status, _ = api("PUT", "/api/network", trial_body, timeout=120)
    check(status == 202 and f"{LAN2_TRIAL}/24" in addresses_of(vm, nic), "a third change is on trial")
    vm.shutdown()
    vm.start()
    wait_wizard(vm, browser, 300, path="/api/session")
    vm.wait_agent(60)
    t0 = time.monotonic()
    seen = addresses_of(vm, nic)
    while not (f"{LAN2_STATIC}/24" in seen and f"{LAN2_TRIAL}/24" not in seen) \
            and time.monotonic() - t0 < 300:
        time.sleep(1)
        seen = addresses_of(vm, nic)
    took = time.monotonic() - t0
    reverted = f"{LAN2_STATIC}/24" in seen and f"{LAN2_TRIAL}/24" not in seen
    print(f"network: after a reboot mid-trial, the previous address was back {took:.1f} s "
          f"after the API answered", flush=True)
    if not reverted:
        _, log, _ = vm.run(["/bin/sh", "-c", "journalctl -b -o short-monotonic --no-pager "
                            "-u streambox -u streambox-netplan | tail -40"], check_rc=False)
        print(log, flush=True)
    check(reverted, f"a trial cut short by a reboot ended with the previous settings ({seen})")
    api = Api(browser, base)
    # The service writes the audit entry once netplan's apply has returned, which can be
    # a little after the addresses are back.
    def cut_short():
        _, audit = api("GET", "/api/audit?limit=50")
        return audit if any(e["action"] == "network.reverted"
                            and "restarted during the trial" in e["detail"] for e in audit) else None
    try:
        audit = wait_for("the audit log to say the reboot cut the trial short", 60, cut_short)
    except Failed:
        _, audit = api("GET", "/api/audit?limit=50")
        print([(e["action"], e["detail"]) for e in audit if e["action"].startswith("network")], flush=True)
        raise
    actions = [e["action"] for e in audit]
    check({"network.try", "network.confirm", "network.reverted", "network.hostname", "network.ntp",
           "network.registration"} <= set(actions),
          f"the audit log has the trials ({[a for a in actions if a.startswith('network')]})")
    # The privileged path is narrow: netplan answers root only, the helper that calls it
    # as root has CAP_NET_ADMIN alone, and only the service's group may reach the helper.
    rc, out, err = vm.run(["/sbin/runuser", "-u", "nobody", "--", "/usr/bin/busctl", "call",
                           "io.netplan.Netplan", "/io/netplan/Netplan", "io.netplan.Netplan", "Info"],
                          check_rc=False)
    check(rc != 0 and "denied" in (out + err).lower(),
          f"another user cannot call netplan ({(out + err).strip()[:120]})")
    rc, out, err = vm.run(["/sbin/runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                           "import socket; s = socket.socket(socket.AF_UNIX); "
                           "s.connect('/run/streambox-netplan/socket')"], check_rc=False)
    check(rc != 0 and "PermissionError" in err, f"another user cannot reach the helper ({err.strip()[-80:]})")
    # CAP_NET_ADMIN (bit 12) only: the VPN's interface is the kernel's to set up.
    _, caps, _ = vm.run(["/bin/sh", "-c", "grep -E '^Cap(Eff|Prm|Bnd)' "
                         "/proc/$(systemctl show -P MainPID streambox-netplan)/status"])
    check(all(l.split()[1] == "0000000000001000" for l in caps.strip().splitlines()) and caps.strip(),
          f"the helper runs with CAP_NET_ADMIN alone ({' '.join(caps.split())})")


def data_partition_start(out):
    """Byte offset of the partition named data in the image."""
    image = glob.glob(os.path.join(out, "streambox-*-amd64.img"))[0]
    table = json.loads(subprocess.run(["sfdisk", "--json", image], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    sector = table.get("sectorsize", 512)
    for p in table["partitions"]:
        if p.get("name") == "data":
            return p["start"] * sector
    raise Failed("no partition named data in the image")


def still_zero(disk, region):
    """Whether `region` ("OFFSET LENGTH" in bytes) of `disk` reads as zeros: qemu-io's
    pattern check, which fails on the first other byte."""
    r = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P 0 {region}", disk],
                       capture_output=True, text=True)
    return r.returncode == 0 and "Pattern verification failed" not in r.stdout


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("image boot test passed")
