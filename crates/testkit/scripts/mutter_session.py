#!/usr/bin/python3
"""Looks at and pokes a headless mutter through its own D-Bus APIs, with no dialog.

Mutter's org.gnome.Mutter.ScreenCast and org.gnome.Mutter.RemoteDesktop are what the portal's
GNOME backend uses underneath; on the session bus they answer anyone, which makes them a
reference independent of the portal and of the code under test. Run inside the session
(`GnomeSession::env` in crates/testkit/src/gnome.rs):

    /usr/bin/python3 mutter_session.py screenshot OUT.png [--cursor hidden|embedded]
    /usr/bin/python3 mutter_session.py pointer        # then "X Y" lines on stdin

`screenshot` records the primary monitor for a moment and writes one frame as a PNG through
`gst-launch-1.0 pipewiresrc` (the picture a screen cast of it would show), then exits 0.

`pointer` starts a remote desktop session, prints "ready", then for each "X Y" line on stdin
moves the pointer to (X, Y) in the primary monitor's pixels (NotifyPointerMotionAbsolute) and
prints "ok"; it stops the session when stdin closes. It stays running because the session's
virtual pointer is the seat's only pointer: with a session per move the seat would lose its
pointer after each one (Wayland clients see it go, and miss the next move). An absolute move
needs a screen cast stream tied to the remote desktop session; it is created, and nobody reads
it.

Any failure is one line on stderr and exit status 1.

Use /usr/bin/python3: a pyenv or venv python usually lacks the `gi` module.
"""

import argparse
import subprocess
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

SCREENCAST = ("org.gnome.Mutter.ScreenCast", "/org/gnome/Mutter/ScreenCast")
REMOTE_DESKTOP = ("org.gnome.Mutter.RemoteDesktop", "/org/gnome/Mutter/RemoteDesktop")
DISPLAY_CONFIG = ("org.gnome.Mutter.DisplayConfig", "/org/gnome/Mutter/DisplayConfig")
# Mutter's own cursor modes (not the portal's bit flags).
CURSOR_MODES = {"hidden": 0, "embedded": 1, "metadata": 2}
TIMEOUT_MS = 10_000


def fail(message):
    print(f"mutter_session: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def call(bus, name, path, interface, method, args, reply_type):
    try:
        reply = bus.call_sync(
            name, path, interface, method, args,
            GLib.VariantType(reply_type) if reply_type else None,
            Gio.DBusCallFlags.NONE, TIMEOUT_MS, None,
        )
    except GLib.Error as error:
        fail(f"{interface}.{method} failed: {error.message}")
    return reply.unpack() if reply is not None else ()


def primary_connector(bus):
    """The connector (like "Meta-0", the virtual monitor) of the primary monitor."""
    _serial, _monitors, logical, _props = call(
        bus, *DISPLAY_CONFIG, "org.gnome.Mutter.DisplayConfig", "GetCurrentState", None,
        "(ua((ssss)a(siiddada{sv})a{sv})a(iiduba(ssss)a{sv})a{sv})",
    )
    for _x, _y, _scale, _transform, primary, monitors, _props in logical:
        if primary and monitors:
            return monitors[0][0]
    if logical and logical[0][5]:
        return logical[0][5][0][0]
    fail("mutter reports no monitor")


def record(bus, remote_desktop_id, cursor_mode):
    """A screen cast session recording the primary monitor: (session, stream path)."""
    properties = {}
    if remote_desktop_id:
        properties["remote-desktop-session-id"] = GLib.Variant("s", remote_desktop_id)
    (session,) = call(
        bus, *SCREENCAST, "org.gnome.Mutter.ScreenCast", "CreateSession",
        GLib.Variant("(a{sv})", (properties,)), "(o)",
    )
    (stream,) = call(
        bus, SCREENCAST[0], session, "org.gnome.Mutter.ScreenCast.Session", "RecordMonitor",
        GLib.Variant("(sa{sv})", (
            primary_connector(bus), {"cursor-mode": GLib.Variant("u", cursor_mode)},
        )),
        "(o)",
    )
    return session, stream


def start_and_wait_for_node(bus, start, stream):
    """Calls `start` and returns the PipeWire node id the stream announces."""
    loop = GLib.MainLoop()
    found = []

    def on_added(_bus, _sender, _path, _iface, _signal, params, _data=None):
        found.append(params.unpack()[0])
        loop.quit()

    # Subscribed before Start: the signal comes once, right after it.
    subscription = bus.signal_subscribe(
        SCREENCAST[0], "org.gnome.Mutter.ScreenCast.Stream", "PipeWireStreamAdded", stream,
        None, Gio.DBusSignalFlags.NONE, on_added,
    )
    start()
    timer = GLib.timeout_add(TIMEOUT_MS, loop.quit)
    loop.run()
    bus.signal_unsubscribe(subscription)
    if not found:
        fail(f"no PipeWire node for {stream} within {TIMEOUT_MS} ms")
    GLib.source_remove(timer)
    return found[0]


def screenshot(bus, out, cursor):
    session, stream = record(bus, None, CURSOR_MODES[cursor])
    node = start_and_wait_for_node(
        bus,
        lambda: call(bus, SCREENCAST[0], session, "org.gnome.Mutter.ScreenCast.Session",
                     "Start", None, None),
        stream,
    )
    try:
        # Mutter sends a frame when the stream starts and then only on damage: keepalive-time
        # repeats the last one, so a still screen still ends the pipeline. Of the three frames
        # the last is kept (each overwrites `out`), the freshest picture.
        grab = subprocess.run(
            ["gst-launch-1.0", "-q", "pipewiresrc", f"path={node}", "num-buffers=3",
             "keepalive-time=100", "always-copy=true", "!", "videoconvert", "!", "pngenc",
             "snapshot=false", "!", "multifilesink", f"location={out}"],
            capture_output=True, text=True, timeout=TIMEOUT_MS / 1000,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        fail(f"gst-launch-1.0 on node {node}: {error} (install gstreamer1.0-tools, "
             "gstreamer1.0-pipewire)")
    finally:
        call(bus, SCREENCAST[0], session, "org.gnome.Mutter.ScreenCast.Session", "Stop",
             None, None)
    if grab.returncode != 0:
        fail(f"gst-launch-1.0 on node {node} failed: {grab.stderr.strip() or grab.stdout.strip()}")


def pointer(bus):
    """Serves pointer moves: one "X Y" line in, one "ok" line out, until stdin closes."""
    (rd_session,) = call(
        bus, *REMOTE_DESKTOP, "org.gnome.Mutter.RemoteDesktop", "CreateSession", None, "(o)",
    )
    (session_id,) = call(
        bus, REMOTE_DESKTOP[0], rd_session, "org.freedesktop.DBus.Properties", "Get",
        GLib.Variant("(ss)", ("org.gnome.Mutter.RemoteDesktop.Session", "SessionId")), "(v)",
    )
    # An absolute position is relative to a stream: one of the primary monitor, tied to this
    # remote desktop session (it starts and stops with it; nothing reads it).
    _cast, stream = record(bus, session_id, CURSOR_MODES["hidden"])
    start_and_wait_for_node(
        bus,
        lambda: call(bus, REMOTE_DESKTOP[0], rd_session, "org.gnome.Mutter.RemoteDesktop.Session",
                     "Start", None, None),
        stream,
    )
    # The session's virtual pointer is the seat's only pointer: it exists (and clients see a
    # pointer at all) only while the session runs, so the session lives as long as we do.
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            x, y = (float(word) for word in line.split())
        except ValueError:
            fail(f"expected \"X Y\", got {line.strip()!r}")
        call(
            bus, REMOTE_DESKTOP[0], rd_session, "org.gnome.Mutter.RemoteDesktop.Session",
            "NotifyPointerMotionAbsolute", GLib.Variant("(sdd)", (stream, x, y)), None,
        )
        print("ok", flush=True)
    call(bus, REMOTE_DESKTOP[0], rd_session, "org.gnome.Mutter.RemoteDesktop.Session", "Stop",
         None, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    shot = commands.add_parser("screenshot", help="write the primary monitor to a PNG")
    shot.add_argument("out")
    shot.add_argument("--cursor", choices=["hidden", "embedded"], default="hidden")
    commands.add_parser("pointer", help='move the pointer: reads "X Y" lines from stdin')
    args = parser.parse_args()
    try:
        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    except GLib.Error as error:
        fail(f"no session bus ({error.message}); is DBUS_SESSION_BUS_ADDRESS set?")
    if args.command == "screenshot":
        screenshot(bus, args.out, args.cursor)
    else:
        pointer(bus)


if __name__ == "__main__":
    main()
