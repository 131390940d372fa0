"""An IP camera for the end-to-end tests: a GStreamer RTSP server (gst-rtsp-server)
serving an MP4 file's H.264 video with its AAC audio, or with the audio transcoded to
G.711 A-law (PCMA, 8 kHz mono) as many cameras send it.

usage: camera.py FILE aac|pcma PORT [USER PASSWORD [digest|basic]]

Serves rtsp://127.0.0.1:PORT/stream1 (PORT 0 picks a free port), with Digest (or Basic)
authentication when USER and PASSWORD are given. Prints "camera listening on PORT" once
ready, and "TEARDOWN" whenever a client tears its session down.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)
path, audio, port = sys.argv[1], sys.argv[2], sys.argv[3]
user, password = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("", "")
method = sys.argv[6] if len(sys.argv) > 6 else "digest"

if audio == "aac":
    audio_branch = "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97"
elif audio == "pcma":
    audio_branch = (
        "d.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample"
        " ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8"
    )
else:
    sys.exit(f"unknown audio {audio!r}: use aac or pcma")

factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={path} ! qtdemux name=d"
    " d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
    f" {audio_branch} )"
)
factory.set_shared(True)

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
if user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    if method == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    server.set_auth(auth)
    role = Gst.Structure.from_string(
        f"{user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
    factory.add_role_from_structure(role)
server.get_mount_points().add_factory("/stream1", factory)


def on_client(_server, client):
    client.connect("teardown-request", lambda *_: print("TEARDOWN", flush=True))


server.connect("client-connected", on_client)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on port {port}")
print(f"camera listening on {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
