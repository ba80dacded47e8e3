#!/usr/bin/python3
"""Starts a screen cast through the real xdg-desktop-portal, as any Wayland application would.

An independent reference for screenshare's own portal client: plain Gio D-Bus calls, nothing
shared with the code under test. Run it inside a session (DBUS_SESSION_BUS_ADDRESS set, see
`GnomeSession::env` in crates/testkit/src/gnome.rs):

    /usr/bin/python3 portal_screencast.py [--restore-token TOKEN] [--timeout SECONDS]

It asks for one monitor (types=1), the pointer as metadata (cursor_mode=4) and a token that
stays valid until revoked (persist_mode=2), then prints ONE line of JSON to stdout:

    {"streams": [{"node": 42, "size": [1280, 720], "position": [0, 0], "source_type": 1}],
     "restore_token": "…", "session": "/org/freedesktop/portal/desktop/session/…"}

and keeps the session (and so the PipeWire node) alive until its stdin closes, then closes the
session and exits 0. Any failure (the user cancelled, the portal is missing, no answer by the
timeout) is one line on stderr and exit status 1.

Use /usr/bin/python3: a pyenv or venv python usually lacks the `gi` module.
"""

import argparse
import json
import os
import sys
import threading

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

PORTAL = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
SCREENCAST = "org.freedesktop.portal.ScreenCast"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"

# The portal's Response codes.
RESPONSES = {1: "cancelled by the user", 2: "ended some other way (the backend failed?)"}


def fail(message):
    print(f"portal_screencast: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class Portal:
    def __init__(self, timeout):
        self.timeout = timeout
        try:
            self.bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        except GLib.Error as error:
            fail(f"no session bus ({error.message}); is DBUS_SESSION_BUS_ADDRESS set?")
        # The request object's path is predictable from our unique name and a token we choose;
        # subscribing to it BEFORE the call means no Response can arrive unseen.
        self.sender = self.bus.get_unique_name()[1:].replace(".", "_")
        self.tokens = 0
        self.loop = GLib.MainLoop()

    def token(self, kind):
        self.tokens += 1
        return f"screenshare_{kind}_{os.getpid()}_{self.tokens}"

    def request(self, method, args_before_options, options):
        """Calls a portal method that answers through a Request object; returns its results."""
        handle_token = self.token("request")
        options = dict(options)
        options["handle_token"] = GLib.Variant("s", handle_token)
        expected = f"{PATH}/request/{self.sender}/{handle_token}"
        answer = {}

        def on_response(_bus, _sender, _path, _iface, _signal, params, _data=None):
            code, results = params.unpack()
            answer["code"] = code
            answer["results"] = results
            self.loop.quit()

        subscription = self.bus.signal_subscribe(
            PORTAL, REQUEST, "Response", expected, None, Gio.DBusSignalFlags.NONE, on_response
        )
        signature = "(" + "".join(sig for sig, _ in args_before_options) + "a{sv})"
        values = tuple(value for _, value in args_before_options) + (options,)
        try:
            reply = self.bus.call_sync(
                PORTAL, PATH, SCREENCAST, method,
                GLib.Variant(signature, values), GLib.VariantType("(o)"),
                Gio.DBusCallFlags.NONE, int(self.timeout * 1000), None,
            )
        except GLib.Error as error:
            self.bus.signal_unsubscribe(subscription)
            fail(f"{method} failed: {error.message}")
        (handle,) = reply.unpack()
        if handle != expected:
            # A portal may choose another path (old ones did): listen there instead.
            self.bus.signal_unsubscribe(subscription)
            subscription = self.bus.signal_subscribe(
                PORTAL, REQUEST, "Response", handle, None, Gio.DBusSignalFlags.NONE, on_response
            )
        if "code" not in answer:
            timed_out = []
            timer = GLib.timeout_add(
                int(self.timeout * 1000), lambda: timed_out.append(True) or self.loop.quit()
            )
            self.loop.run()
            if not timed_out:
                GLib.source_remove(timer)
        self.bus.signal_unsubscribe(subscription)
        if "code" not in answer:
            fail(f"{method}: no Response within {self.timeout} s (a dialog nobody answered?)")
        if answer["code"] != 0:
            reason = RESPONSES.get(answer["code"], f"code {answer['code']}")
            fail(f"{method} was refused: {reason}")
        return answer["results"]

    def version(self):
        reply = self.bus.call_sync(
            PORTAL, PATH, "org.freedesktop.DBus.Properties", "Get",
            GLib.Variant("(ss)", (SCREENCAST, "version")), GLib.VariantType("(v)"),
            Gio.DBusCallFlags.NONE, int(self.timeout * 1000), None,
        )
        return reply.unpack()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restore-token", default="", help="a token a previous run printed")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per portal step")
    parser.add_argument("--source-types", type=int, default=1, help="1 monitor, 2 window")
    parser.add_argument("--cursor-mode", type=int, default=4, help="1 hidden, 2 embedded, 4 metadata")
    args = parser.parse_args()

    portal = Portal(args.timeout)
    try:
        version = portal.version()
    except GLib.Error as error:
        fail(f"the ScreenCast portal does not answer: {error.message}")

    session_token = portal.token("session")
    results = portal.request("CreateSession", [], {
        "session_handle_token": GLib.Variant("s", session_token),
    })
    session = results.get("session_handle")
    if not session:
        fail(f"CreateSession gave no session_handle: {results}")

    select = {
        "types": GLib.Variant("u", args.source_types),
        "multiple": GLib.Variant("b", False),
        "cursor_mode": GLib.Variant("u", args.cursor_mode),
    }
    if version >= 4:
        select["persist_mode"] = GLib.Variant("u", 2)
        if args.restore_token:
            select["restore_token"] = GLib.Variant("s", args.restore_token)
    portal.request("SelectSources", [("o", session)], select)

    # The dialog (if any) shows now; Start answers once the user chose.
    results = portal.request("Start", [("o", session), ("s", "")], {})
    streams = [
        {
            "node": node,
            "size": list(props.get("size", ())),
            "position": list(props.get("position", ())),
            "source_type": props.get("source_type"),
        }
        for node, props in results.get("streams", [])
    ]
    if not streams:
        fail(f"Start gave no streams: {results}")
    print(json.dumps({
        "streams": streams,
        "restore_token": results.get("restore_token", ""),
        "session": session,
    }), flush=True)

    # Keep the cast alive until the caller is done: its end of our stdin closes.
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    try:
        portal.bus.call_sync(
            PORTAL, session, SESSION, "Close", None, None,
            Gio.DBusCallFlags.NONE, 5000, None,
        )
    except GLib.Error:
        pass  # The portal may already be gone (the session is torn down around us).


if __name__ == "__main__":
    main()
