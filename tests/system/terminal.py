"""Real terminals for the shell tests: a private tmux server whose windows
run a login-less shell with the build directory first on PATH and HOME set
to the test's directory; commands are typed into them like a user would,
and the screen is read back (history included, wrapped lines joined).
"""
import os
import subprocess

import harness
from harness import poll


class Tmux:
    def __init__(self, tmp_path, session="seed"):
        self.sock = str(tmp_path / "tmux.sock")
        self.home = str(tmp_path / "home")
        self.session = session
        os.makedirs(self.home, exist_ok=True)
        env_path = os.path.dirname(harness.RQLITED) + os.pathsep + os.environ.get("PATH", "")
        self.env = dict(os.environ, HOME=self.home, PATH=env_path)
        self.run("new-session", "-d", "-s", session, "-n", "init", "-x", "200", "-y", "50")
        self.run("set-option", "-g", "history-limit", "20000")

    def run(self, *args):
        return subprocess.run(["tmux", "-S", self.sock] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=10, check=True).stdout

    def target(self, name):
        return "%s:%s" % (self.session, name)

    def window(self, name, command):
        # A login-less shell in the window; the command is typed like a user would.
        self.run("new-window", "-d", "-t", self.session, "-n", name)
        self.run("send-keys", "-t", self.target(name), "export HOME=%s PATH=%s" %
                 (self.home, self.env["PATH"]), "Enter")
        self.type(name, command)

    def type(self, name, text):
        self.run("send-keys", "-t", self.target(name), "-l", text)
        self.run("send-keys", "-t", self.target(name), "Enter")

    def literal(self, name, text):
        """Type text without pressing Enter."""
        self.run("send-keys", "-t", self.target(name), "-l", text)

    def keys(self, name, *keys):
        """Press keys by tmux's names ("Tab", "Enter", "C-u")."""
        self.run("send-keys", "-t", self.target(name), *keys)

    def ctrl_c(self, name):
        self.run("send-keys", "-t", self.target(name), "C-c")

    def screen(self, name):
        return self.run("capture-pane", "-p", "-J", "-t", self.target(name), "-S", "-5000")

    def wait_for(self, name, text, timeout=30, after=0):
        return poll(lambda: text in self.screen(name)[after:] and self.screen(name),
                    timeout, what="%r in window %s" % (text, name))

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=10)
