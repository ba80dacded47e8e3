#!/usr/bin/python3
"""Answers xdg-desktop-portal-gnome's "Screen Share" dialog through AT-SPI, as a user would.

Run inside the session (`GnomeSession::env` in crates/testkit/src/gnome.rs):

    /usr/bin/python3 answer_share_dialog.py [--timeout SECONDS]   # wait, pick the first, Share
    /usr/bin/python3 answer_share_dialog.py --check               # prints "open" or "closed"

Answering waits for the dialog, picks a list (the one on the page shown, "Entire Screen" by
default, or else the first list that has entries, showing its page), selects its first entry
(the first monitor, or the first window), waits until "Share" is enabled, clicks it and waits
until the dialog is gone. Exit 0 when done; exit 1 with one line on stderr when any step misses
the deadline (above all: no dialog appeared). Never click "Share" with nothing selected:
xdg-desktop-portal-gnome 43 crashes on it, and the portal session with it.

Under plain mutter (no gnome-shell) the window list stays empty: the backend asks
org.gnome.Shell.Introspect for windows, which only gnome-shell provides. A cast asking for
windows only (types=2) therefore cannot be answered; one asking for monitors or windows
(types=3) is answered with the monitor.

The dialog as AT-SPI shows it (GTK 4.8, LC_ALL=C): application "xdg-desktop-portal-gnome" >
frame "Screen Share" > ... > panel "Entire Screen" (and panel "Single Window" with types=3,
with a page tab list "GtkStackSwitcher" of page tabs of the same names near the buttons) > ... >
list "GtkListBox" > list item (one per monitor, named after its vendor, "MetaVendor" for
mutter's virtual monitor; lists and the tab list support the Selection interface), and push
buttons named "_Cancel Cancel" and "_Share Share" (mnemonic, then label), "Share" insensitive
until an entry is selected.

Use /usr/bin/python3: a pyenv or venv python usually lacks the `gi` module.
"""

import argparse
import sys
import time

import gi

gi.require_version("Atspi", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

APPLICATION = "xdg-desktop-portal-gnome"
POLL = 0.05


def fail(message):
    print(f"answer_share_dialog: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def refresh():
    """Lets libatspi take in the events that keep its cached tree current."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass


def children(node):
    try:
        count = node.get_child_count()
    except GLib.Error:
        return  # The object went away while we looked (the dialog closing).
    for index in range(count):
        try:
            child = node.get_child_at_index(index)
        except GLib.Error:
            continue
        if child is not None:
            yield child


def count(node):
    try:
        return node.get_child_count()
    except GLib.Error:
        return 0


def role(node):
    try:
        return node.get_role()
    except GLib.Error:
        return None


def name(node):
    try:
        return node.get_name() or ""
    except GLib.Error:
        return ""


def has_state(node, state):
    try:
        return node.get_state_set().contains(state)
    except GLib.Error:
        return False


def is_share_button(node):
    # GTK names it "_Share Share" (the mnemonic label, then the label's text).
    return role(node) == Atspi.Role.PUSH_BUTTON and "Share" in name(node).replace("_", "").split()


class Dialog:
    """The open share dialog's parts, or None when there is no such dialog now."""

    def __init__(self, frame, lists, tabs, share):
        # lists: (page name or None, list); tabs: the page tab list, or None with one page.
        self.frame, self.lists, self.tabs, self.share = frame, lists, tabs, share

    @staticmethod
    def find():
        refresh()
        desktop = Atspi.get_desktop(0)
        for app in children(desktop):
            if name(app) != APPLICATION:
                continue
            # Only the portal's tree is refreshed: clearing the whole desktop's cache while
            # another application (a WebKit window) sends events crashes libatspi 2.46.
            app.clear_cache()
            for frame in children(app):
                dialog = Dialog.parts(frame)
                if dialog is not None:
                    return dialog
        return None

    @staticmethod
    def parts(frame):
        lists, tabs, share = [], None, None

        def visit(node, page):
            nonlocal tabs, share
            kind = role(node)
            if kind == Atspi.Role.PANEL and name(node):
                page = name(node)  # A stack page: "Entire Screen", "Single Window".
            if kind == Atspi.Role.LIST:
                lists.append((page, node))
            elif kind == Atspi.Role.PAGE_TAB_LIST:
                tabs = node
            elif is_share_button(node):
                share = node
            for child in children(node):
                visit(child, page)

        visit(frame, None)
        return Dialog(frame, lists, tabs, share) if share is not None else None

    def selected_page(self):
        for tab in children(self.tabs) if self.tabs is not None else ():
            if has_state(tab, Atspi.StateType.SELECTED):
                return name(tab)
        return None

    def choose(self):
        """The list to pick from: the shown page's if it has entries, else the first page's
        that has (a window list stays empty under plain mutter: no org.gnome.Shell.Introspect).
        """
        filled = [(page, entries) for page, entries in self.lists if count(entries)]
        shown = self.selected_page()
        for page, entries in filled:
            if page == shown:
                return page, entries
        return filled[0] if filled else None

    def show_page(self, page):
        for index, tab in enumerate(children(self.tabs)):
            if name(tab) == page:
                if not has_state(tab, Atspi.StateType.SELECTED):
                    Atspi.Selection.select_child(self.tabs, index)
                    refresh()
                return has_state(tab, Atspi.StateType.SELECTED)
        fail(f"the dialog has no tab for its page {page!r}")

    def gone(self):
        return Dialog.find() is None


def wait_for(what, deadline, check):
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(POLL)


def answer(timeout):
    deadline = time.monotonic() + timeout
    dialog = wait_for(f'the "Screen Share" dialog of {APPLICATION}', deadline, Dialog.find)
    if not dialog.lists:
        fail("the dialog has no list of monitors or windows")
    # The lists fill in after the dialog maps (the monitors come from mutter over D-Bus).
    page, entries = wait_for("an entry in one of the dialog's lists", deadline, dialog.choose)
    # Share takes the selection of the page shown: show the one we pick from.
    if dialog.tabs is not None and page is not None:
        wait_for(f"the dialog's page {page!r} to show", deadline, lambda: dialog.show_page(page))
    first = entries.get_child_at_index(0)

    def selected():
        if not has_state(first, Atspi.StateType.SELECTED):
            Atspi.Selection.select_child(entries, 0)
            refresh()
        return has_state(first, Atspi.StateType.SELECTED)

    wait_for(f"the first entry ({name(first)!r}) to be selected", deadline, selected)
    # Only an enabled Share is safe to click (see the module's doc).
    wait_for("the Share button to be enabled", deadline,
             lambda: refresh() or has_state(dialog.share, Atspi.StateType.SENSITIVE))
    if not Atspi.Action.do_action(dialog.share, 0):
        fail("clicking Share failed")
    wait_for("the dialog to close after Share", deadline, dialog.gone)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for all of it")
    parser.add_argument("--check", action="store_true", help='print "open" or "closed"')
    args = parser.parse_args()
    if Atspi.init() not in (0, 1):  # 1: already initialised.
        fail("cannot reach the accessibility bus (is at-spi2-core installed?)")
    if args.check:
        print("open" if Dialog.find() else "closed", flush=True)
    else:
        answer(args.timeout)


if __name__ == "__main__":
    main()
