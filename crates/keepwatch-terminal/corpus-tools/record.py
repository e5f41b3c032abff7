#!/usr/bin/env python3
"""Record the keepwatch-terminal test corpus from real shells.

Each case runs a real shell (bash, dash, zsh) in a pty, types keystrokes with
small delays the way a person would, and saves exactly what a gateway sees:
output bytes from the shell, input bytes from the person and resizes, each
with a time offset in microseconds, plus the commands the person ran.

Usage (as root: it creates the test users `kwuser`/`kwother`, a sudoers entry
and, for the nested ssh cases, a throwaway sshd on 127.0.0.1:2222):

    python3 corpus-tools/record.py [--only SHELL[/CASE]] [--list]

Needs: bash, dash, zsh, sudo, vim, less, top (procps), openssh-server.
Files go to ../tests/corpus/<shell>/<case>.json. Bytes are stored as JSON
strings with one character per byte (latin-1), so every byte survives.
"""

import argparse
import fcntl
import json
import os
import pwd
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "tests", "corpus")

USER_PASSWORD = "kw-Secret-1"
OTHER_PASSWORD = "kw-Other-2"
SSH_PORT = 2222

# Keys a person presses.
ENTER = "\r"
UP, DOWN, RIGHT, LEFT = "\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D"
BS = "\x7f"
TAB = "\t"
ESC = "\x1b"


def ctrl(c):
    return chr(ord(c.upper()) - 64)


# ---------------------------------------------------------------------------
# Steps of a case.


class Type:
    """Type text one key at a time (escape sequences count as one key)."""

    def __init__(self, text, delay=0.03, settle=0.15):
        self.text, self.delay, self.settle = text, delay, settle


class Paste:
    """Paste text in one write, bracketed if the program asked for it."""

    def __init__(self, text, settle=0.3):
        self.text, self.settle = text, settle


class Wait:
    def __init__(self, seconds):
        self.seconds = seconds


class Resize:
    def __init__(self, cols, rows):
        self.cols, self.rows = cols, rows


def line(text, settle=0.3):
    """Type a command line and press Enter."""
    return [Type(text), Type(ENTER, settle=settle)]


def cmd(text, confidence="exact", full_screen=False):
    return {"text": text, "confidence": confidence, "full_screen": full_screen}


def keys(text):
    """Split text into keys: an escape sequence is one key."""
    out, i = [], 0
    while i < len(text):
        if text[i] == ESC and i + 1 < len(text) and text[i + 1] in "[O":
            j = i + 2
            while j < len(text) and not (0x40 <= ord(text[j]) <= 0x7E):
                j += 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return out


# ---------------------------------------------------------------------------
# Shell setups.

BASH_COLOR_PS1 = (
    r"\[\e]0;\u@\h: \w\a\]\[\e[01;32m\]\u@\h\[\e[00m\]:\[\e[01;34m\]\w\[\e[00m\]\$ "
)
ZSH_COLOR_PROMPT = "%F{green}%n@%m%f:%F{blue}%~%f%# "


def setup_files(shell, home, prompt):
    """Write the shell's start-up file and return (argv, extra env)."""
    if shell == "bash":
        rc = os.path.join(home, ".kwbashrc")
        with open(rc, "w") as f:
            f.write(f"HISTFILE={home}/.bash_history\n")
            if prompt == "color":
                f.write(f"PS1='{BASH_COLOR_PS1}'\n")
            elif prompt == "osc133":
                f.write("PS1='\\[\\e]133;A\\a\\]$ \\[\\e]133;B\\a\\]'\n")
                f.write("PS0='\\e]133;C\\a'\n")
            else:
                f.write("PS1='$ '\n")
        return ["bash", "--noprofile", "--rcfile", rc, "-i"], {}
    if shell == "zsh":
        with open(os.path.join(home, ".zshrc"), "w") as f:
            f.write("bindkey -e\n")
            f.write(f"HISTFILE={home}/.zsh_history\nHISTSIZE=100\nSAVEHIST=100\n")
            f.write("autoload -Uz compinit && compinit -u -d " + home + "/.zcompdump\n")
            if prompt == "color":
                f.write(f"PROMPT='{ZSH_COLOR_PROMPT}'\nRPROMPT='[%?]'\n")
            else:
                f.write("PROMPT='%% '\n")
        return ["zsh", "-i"], {"ZDOTDIR": home}
    if shell == "dash":
        envfile = os.path.join(home, ".kwdashrc")
        with open(envfile, "w") as f:
            if prompt == "color":
                f.write("PS1=\"$(printf '\\033[01;32m')$(whoami)@$(hostname)$(printf '\\033[00m')$ \"\n")
            else:
                f.write("PS1='$ '\n")
        return ["dash", "-i"], {"ENV": envfile}
    raise ValueError(shell)


# ---------------------------------------------------------------------------
# The recorder.


class Recording:
    def __init__(self, cols, rows):
        self.t0 = time.monotonic()
        self.events = []
        self.cols, self.rows = cols, rows
        self.bracketed = False
        self.tail = b""

    def now(self):
        return int((time.monotonic() - self.t0) * 1_000_000)

    def add(self, kind, data):
        self.events.append([self.now(), kind, data])


def set_winsize(fd, cols, rows):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def record_case(shell, case):
    cols, rows = case.get("size", (80, 24))
    home = tempfile.mkdtemp(prefix=f"kw-{shell}-")
    user = case.get("user")
    if user:
        pw = pwd.getpwnam(user)
        shutil.chown(home, pw.pw_uid, pw.pw_gid)
    argv, extra = setup_files(shell, home, case.get("prompt", "plain"))
    if user:
        for name in os.listdir(home):
            shutil.chown(os.path.join(home, name), pw.pw_uid, pw.pw_gid)
    env = {
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "HOME": home,
        "USER": user or "root",
        "LOGNAME": user or "root",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "SHELL": shutil.which(shell),
    }
    env.update(extra)

    master, slave = os.openpty()
    set_winsize(slave, cols, rows)

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if user:
            os.initgroups(user, pw.pw_gid)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=home,
        env=env,
        preexec_fn=child_setup,
        close_fds=True,
    )
    os.close(slave)
    rec = Recording(cols, rows)

    def pump(timeout):
        """Read output until `timeout` seconds pass; False at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            r, _, _ = select.select([master], [], [], left)
            if not r:
                return True
            try:
                data = os.read(master, 65536)
            except OSError:
                return False
            if not data:
                return False
            rec.add("o", data.decode("latin-1"))
            scan = rec.tail + data
            on, off = scan.rfind(b"\x1b[?2004h"), scan.rfind(b"\x1b[?2004l")
            if on != off:
                rec.bracketed = on > off
            rec.tail = scan[-8:]

    def settle(quiet, limit=5.0):
        """Read until no output for `quiet` seconds (at most `limit`)."""
        end = time.monotonic() + limit
        n = len(rec.events)
        while time.monotonic() < end:
            if not pump(quiet):
                return False
            if len(rec.events) == n:
                return True
            n = len(rec.events)
        return True

    def send(text):
        data = text.encode("utf-8")
        rec.add("i", data.decode("latin-1"))
        os.write(master, data)

    # Typeahead: keys the person sends before the shell has drawn anything
    # (over SSH, while the motd prints); the tty echoes them at once.
    for text in case.get("typeahead", []):
        send(text)
    # Wait for the first prompt (zsh's compinit takes a while), then for quiet:
    # other keys typed before the prompt would be typeahead a case did not mean.
    end = time.monotonic() + 15
    while not rec.events and time.monotonic() < end:
        pump(0.1)
    settle(0.8)
    alive = True
    for step in case["steps"]:
        if not alive:
            break
        if isinstance(step, Type):
            for key in keys(step.text):
                send(key)
                alive = pump(step.delay)
                if not alive:
                    break
            if alive:
                alive = settle(step.settle)
        elif isinstance(step, Paste):
            text = step.text
            if rec.bracketed:
                text = "\x1b[200~" + text + "\x1b[201~"
            send(text)
            alive = settle(step.settle)
        elif isinstance(step, Wait):
            alive = pump(step.seconds)
        elif isinstance(step, Resize):
            set_winsize(master, step.cols, step.rows)
            rec.add("r", [step.cols, step.rows])
            alive = settle(0.2)
    # Drain until the shell exits.
    end = time.monotonic() + 5
    while alive and time.monotonic() < end:
        alive = pump(0.2)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    os.close(master)
    shutil.rmtree(home, ignore_errors=True)
    return rec


def save(shell, name, case, rec):
    folder = os.path.join(CORPUS, shell)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        f.write("{\n")
        f.write(f'  "shell": {json.dumps(shell)},\n')
        f.write(f'  "case": {json.dumps(name)},\n')
        f.write(f'  "description": {json.dumps(case["description"])},\n')
        f.write(f'  "cols": {rec.cols},\n  "rows": {rec.rows},\n')
        f.write('  "expected": [\n')
        exp = case["expected"]
        for i, c in enumerate(exp):
            f.write("    " + json.dumps(c) + ("," if i + 1 < len(exp) else "") + "\n")
        f.write("  ],\n")
        f.write('  "events": [\n')
        for i, e in enumerate(rec.events):
            f.write("    " + json.dumps(e) + ("," if i + 1 < len(rec.events) else "") + "\n")
        f.write("  ]\n}\n")
    return path


# ---------------------------------------------------------------------------
# Machine setup for the sudo/su/ssh cases.


def ensure_users():
    for user, password in (("kwuser", USER_PASSWORD), ("kwother", OTHER_PASSWORD)):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], check=True)
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    with open("/etc/sudoers.d/kwuser", "w") as f:
        f.write("kwuser ALL=(ALL:ALL) ALL\nDefaults:kwuser lecture=never\n")
    os.chmod("/etc/sudoers.d/kwuser", 0o440)


def ensure_sshd():
    """A throwaway sshd on 127.0.0.1 for the nested ssh cases; key auth for kwuser."""
    pw = pwd.getpwnam("kwuser")
    ssh_dir = os.path.join(pw.pw_dir, ".ssh")
    os.makedirs(ssh_dir, exist_ok=True)
    key = os.path.join(ssh_dir, "id_ed25519")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    shutil.copy(key + ".pub", os.path.join(ssh_dir, "authorized_keys"))
    for name in os.listdir(ssh_dir):
        shutil.chown(os.path.join(ssh_dir, name), pw.pw_uid, pw.pw_gid)
    shutil.chown(ssh_dir, pw.pw_uid, pw.pw_gid)
    os.chmod(ssh_dir, 0o700)
    os.makedirs("/run/sshd", exist_ok=True)
    conf = "/tmp/kw-sshd_config"
    with open(conf, "w") as f:
        f.write(
            f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nPasswordAuthentication no\n"
            "PubkeyAuthentication yes\nUsePAM yes\nPidFile /tmp/kw-sshd.pid\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPrintMotd no\n"
        )
    if subprocess.run(["ss", "-ltn", f"sport = :{SSH_PORT}"], capture_output=True, text=True).stdout.count("LISTEN") == 0:
        subprocess.run(["/usr/sbin/sshd", "-f", conf], check=True)
        time.sleep(0.5)


def stop_sshd():
    try:
        with open("/tmp/kw-sshd.pid") as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------
# The cases.


def cases_for(shell):
    readline = shell in ("bash", "zsh")
    c = {}
    exit_ = line("exit")

    c["simple"] = {
        "description": "plain prompt, a few commands, an empty Enter that runs nothing",
        "steps": line("echo hello") + line("ls /") + line("pwd") + [Type(ENTER)] + line("true") + exit_,
        "expected": [cmd("echo hello"), cmd("ls /"), cmd("pwd"), cmd("true"), cmd("exit")],
    }
    c["colored_prompt"] = {
        "description": "a default-ish colored prompt (title OSC, colors, cwd that changes)"
        + ("; zsh right prompt" if shell == "zsh" else ""),
        "prompt": "color",
        "steps": line("cd /tmp") + line("echo in tmp") + line("cd /usr/share") + line("ls -d doc") + line("false") + line("echo after-false") + exit_,
        "expected": [cmd("cd /tmp"), cmd("echo in tmp"), cmd("cd /usr/share"), cmd("ls -d doc"), cmd("false"), cmd("echo after-false"), cmd("exit")],
    }
    if readline:
        c["editing"] = {
            "description": "readline/zle editing: backspace, arrows, Ctrl-A/E/W/U/K",
            "steps": [
                Type("echo wrold" + BS * 5 + "world" + ENTER, settle=0.3),
                Type("cho abc" + ctrl("a") + "e" + ctrl("e") + " def" + ENTER, settle=0.3),
                Type("echo one two three" + ctrl("w") + ctrl("w") + "four" + ENTER, settle=0.3),
                Type("garbage text" + ctrl("u") + "echo after-kill" + ENTER, settle=0.3),
                Type("echo keep cut-this" + LEFT * 8 + ctrl("k") + ENTER, settle=0.3),
                Type("echo ac" + LEFT + "b" + RIGHT + "d" + ENTER, settle=0.3),
            ]
            + exit_,
            "expected": [
                cmd("echo world"),
                cmd("echo abc def"),
                cmd("echo one four"),
                cmd("echo after-kill"),
                cmd("echo keep"),
                cmd("echo abcd"),
                cmd("exit"),
            ],
        }
        c["history"] = {
            "description": "history recall with the up arrow, editing a recalled line, Ctrl-R reverse search",
            "steps": line("echo first")
            + line("echo second")
            + [Type(UP + UP + ENTER, settle=0.3)]
            + [Type(UP + BS * 5 + "third" + ENTER, settle=0.3)]
            + [Type(ctrl("r") + "seco", settle=0.3), Type(ENTER, settle=0.3)]
            + [Type(ctrl("r") + "fir", settle=0.3), Type(ctrl("e") + " again" + ENTER, settle=0.3)]
            + exit_,
            "expected": [
                cmd("echo first"),
                cmd("echo second"),
                cmd("echo first"),
                cmd("echo third"),
                cmd("echo second"),
                cmd("echo first again"),
                cmd("exit"),
            ],
        }
        c["tab_completion"] = {
            "description": "tab completion of a command and paths, including a double-tab listing",
            "steps": [
                Type("ech" + TAB, settle=0.3),
                Type("tab-done" + ENTER, settle=0.3),
                Type("ls -d /usr/sha" + TAB, settle=0.3),
                Type(ENTER, settle=0.3),
                Type("ls -d /usr/l" + TAB, settle=0.3),
                Type(TAB, settle=0.3),
                Type("oc" + TAB, settle=0.3),
                Type(ENTER, settle=0.3),
                Type("ls -d /usr/li" + TAB, settle=0.3),
                Type("ex" + TAB, settle=0.3),
                Type(ENTER, settle=0.3),
            ]
            + exit_,
            "expected": [
                cmd("echo tab-done"),
                cmd("ls -d /usr/share/"),
                cmd("ls -d /usr/local/"),
                cmd("ls -d /usr/libexec/"),
                cmd("exit"),
            ]
            if shell == "bash"
            # zsh: `ech` is ambiguous (echo, echotc, echoti) so no space is
            # added; a completed directory's slash is removed on Enter; the
            # second Tab starts menu completion (lib/), so `oc` then completes
            # /usr/lib/ocf. The corpus keeps what zsh really ran.
            else [
                cmd("echotab-done"),
                cmd("ls -d /usr/share"),
                cmd("ls -d /usr/lib/ocf"),
                cmd("ls -d /usr/libexec"),
                cmd("exit"),
            ],
        }
    else:
        c["plain_editing"] = {
            "description": "dash has no line editor: the tty's erase (DEL), kill (Ctrl-U) and word-erase (Ctrl-W)",
            "steps": [
                Type("echo wrold" + BS * 5 + "world" + ENTER, settle=0.3),
                Type("garbage text" + ctrl("u") + "echo after-kill" + ENTER, settle=0.3),
                Type("echo one two three" + ctrl("w") + ctrl("w") + "four" + ENTER, settle=0.3),
            ]
            + exit_,
            "expected": [cmd("echo world"), cmd("echo after-kill"), cmd("echo one four"), cmd("exit")],
        }
    c["ctrl_c"] = {
        "description": "Ctrl-C on a half-typed line runs nothing; Ctrl-C of a running command",
        "steps": [Type("echo nope", settle=0.2), Type(ctrl("c"), settle=0.3)]
        + line("echo yes")
        + line("sleep 5", settle=0.5)
        + [Type(ctrl("c"), settle=0.3)]
        + line("echo after-sleep")
        + exit_,
        "expected": [cmd("echo yes"), cmd("sleep 5"), cmd("echo after-sleep"), cmd("exit")],
    }
    c["multiline"] = {
        "description": "continuation prompts: a for loop, a here-doc, an open quote, a backslash; a cancelled one",
        "steps": line("for i in 1 2; do")
        + line("echo n$i")
        + line("done")
        + line("cat <<EOF")
        + line("hello")
        + line("world")
        + line("EOF")
        + line('echo "a')
        + line('b"')
        + line("echo one \\")
        + line("two")
        + line("for x in 1; do")
        + [Type(ctrl("c"), settle=0.3)]
        + line("echo after-cancel")
        + exit_,
        "expected": [
            cmd("for i in 1 2; do\necho n$i\ndone"),
            cmd("cat <<EOF\nhello\nworld\nEOF"),
            cmd('echo "a\nb"'),
            cmd("echo one \\\ntwo"),
            cmd("echo after-cancel"),
            cmd("exit"),
        ],
    }
    long_arg = "-".join(f"word{i:02}" for i in range(30))
    c["long_line"] = {
        "description": "long command lines that wrap, at the bottom of a full screen so they scroll, and a resize while typing",
        "steps": line("seq 30")
        + line("echo " + long_arg)
        + [Type("echo resized-" + long_arg[:60]), Resize(60, 20), Type(long_arg[60:120]), Type(ENTER, settle=0.3)]
        + line("echo short")
        + exit_,
        "expected": [
            cmd("seq 30"),
            cmd("echo " + long_arg),
            cmd("echo resized-" + long_arg[:120]),
            cmd("echo short"),
            cmd("exit"),
        ],
    }
    paste_steps = [Paste("echo pasted-text"), Type(ENTER, settle=0.3)]
    paste_expected = [cmd("echo pasted-text")]
    if readline:
        paste_steps += [Paste("echo one\necho two"), Type(ENTER, settle=0.3)]
        paste_expected += [cmd("echo one\necho two")]
    if readline:
        # A bracketed paste's newline is inserted, not run: Enter still has to be pressed.
        paste_steps += [Paste("echo whole-line\r", settle=0.4), Type(ENTER, settle=0.3)]
    else:
        paste_steps += [Paste("echo whole-line\r", settle=0.4)]
    paste_expected += [cmd("echo whole-line")]
    c["paste"] = {
        "description": "pasted text (bracketed paste when the shell enables it), a multi-line paste, a paste with its Enter",
        "steps": paste_steps + exit_,
        "expected": paste_expected + [cmd("exit")],
    }
    if shell == "zsh":
        read_secret = 'read -s "s?Secret: "; echo "len ${#s}"'
    elif shell == "bash":
        read_secret = 'read -s -p "Secret: " s; echo; echo "len ${#s}"'
    else:
        read_secret = 'printf "Secret: "; stty -echo; read s; stty echo; echo; echo "len ${#s}"'
    c["sudo_su"] = {
        "description": "sudo -i and su - with password prompts; prompts change inside; exit back",
        "user": "kwuser",
        "prompt": "color",
        "steps": line("whoami")
        + line("sudo -i", settle=1.0)
        + [Type(USER_PASSWORD), Type(ENTER, settle=1.0)]
        + line("whoami")
        + line("exit", settle=0.5)
        + line("su - kwother", settle=1.0)
        + [Type(OTHER_PASSWORD), Type(ENTER, settle=3.5)]
        + line("id -un")
        + line("exit", settle=0.5)
        + exit_,
        "expected": [
            cmd("whoami"),
            cmd("sudo -i"),
            cmd("whoami"),
            cmd("exit"),
            cmd("su - kwother"),
            cmd("id -un"),
            cmd("exit"),
            cmd("exit"),
        ],
    }
    c["nested_ssh"] = {
        "description": "a nested ssh to another host's shell (a local sshd): the remote prompt differs",
        "user": "kwuser",
        "steps": line(f"ssh -q -p {SSH_PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null kwuser@127.0.0.1", settle=2.0)
        + line("echo on-remote")
        + line("pwd")
        + line("exit", settle=0.8)
        + line("echo back-home")
        + exit_,
        "expected": [
            cmd(f"ssh -q -p {SSH_PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null kwuser@127.0.0.1"),
            cmd("echo on-remote"),
            cmd("pwd"),
            cmd("exit"),
            cmd("echo back-home"),
            cmd("exit"),
        ],
    }
    c["fullscreen"] = {
        "description": "vim, less and top: the commands that start them are recorded, keystrokes inside are not",
        "steps": line("vim -u NONE /tmp/kw-vim-test.txt", settle=0.6)
        + [Type("ihello from vim" + ESC, settle=0.3), Type(":wq" + ENTER, settle=0.5)]
        + line("less /etc/services", settle=0.5)
        + [Type(" ", settle=0.3), Type("/http" + ENTER, settle=0.3), Type("q", settle=0.4)]
        + line("top", settle=1.0)
        + [Wait(1.0), Type("q", settle=0.4)]
        + line("echo after-fullscreen")
        + exit_,
        "expected": [
            cmd("vim -u NONE /tmp/kw-vim-test.txt", full_screen=True),
            cmd("less /etc/services", full_screen=True),
            cmd("top", full_screen=True),
            cmd("echo after-fullscreen"),
            cmd("exit"),
        ],
    }
    noecho_expected = [cmd("stty -echo"), cmd("", "unknown"), cmd("", "unknown"), cmd("echo visible"), cmd(read_secret), cmd("exit")]
    if shell == "zsh":
        # zle draws the line itself whatever the tty's echo flag says.
        noecho_expected = [cmd("stty -echo"), cmd("echo hidden"), cmd("stty echo"), cmd("echo visible"), cmd(read_secret), cmd("exit")]
    c["noecho"] = {
        "description": "commands typed after stty -echo are not on screen (unknown, not guessed); a read -s secret is not a command",
        "steps": line("stty -echo")
        + line("echo hidden")
        + line("stty echo")
        + line("echo visible")
        + line(read_secret)
        + [Type("my-secret-value"), Type(ENTER, settle=0.3)]
        + exit_,
        "expected": noecho_expected,
    }
    clear_steps = line("echo before-clear") + line("clear")
    if readline:
        clear_steps += [Type("echo typed-then"), Type(ctrl("l"), settle=0.3), Type("-cleared" + ENTER, settle=0.3)]
    clear_steps += line("echo after-clear")
    c["clear_screen"] = {
        "description": "clear, and Ctrl-L while typing (the prompt is redrawn at the top)",
        "steps": clear_steps + exit_,
        "expected": [cmd("echo before-clear"), cmd("clear")]
        + ([cmd("echo typed-then-cleared")] if readline else [])
        + [cmd("echo after-clear"), cmd("exit")],
    }
    c["program_input"] = {
        "description": "lines typed into a running program (cat) and a command whose output has no final newline",
        "steps": line("cat")
        + line("line one")
        + line("line two")
        + [Type(ctrl("d"), settle=0.3)]
        + line("printf no-newline")
        + line("echo next")
        + exit_,
        "expected": [cmd("cat"), cmd("printf no-newline"), cmd("echo next"), cmd("exit")],
    }
    # Issue 9, section 4: commands that ran but were missing from the record.
    if readline:
        c["history_repeat"] = {
            "description": "history recall that lands on the text of the previous command: Up at the"
            " top of the history (a bell), Up Up over two equal entries, Up alone; each ran again",
            "steps": line("echo kw-rep")
            + [Type(UP + UP + ENTER, settle=0.3)]
            + [Type(UP + ENTER, settle=0.3)]
            + [Type(UP + UP + ENTER, settle=0.3)]
            + line("echo kw-two")
            + [Type(UP + UP + ENTER, settle=0.3)]
            + [Type(UP + UP + ENTER, settle=0.3)]
            + exit_,
            "expected": [
                cmd("echo kw-rep"),
                cmd("echo kw-rep"),
                cmd("echo kw-rep"),
                cmd("echo kw-rep"),
                cmd("echo kw-two"),
                cmd("echo kw-rep"),
                cmd("echo kw-two"),
                cmd("exit"),
            ],
        }
        c["bang"] = {
            "description": "history expansion: !!, !prefix and ^old^new run the expanded line (the"
            " shell prints it); an event that is not found runs nothing; !! in single quotes is literal",
            "steps": line("echo kw-bang")
            + line("!!")
            + line("!ech")
            + line("^bang^bong")
            + line("!kw-nosuch")
            + line("echo 'kw-quoted!!'")
            + exit_,
            "expected": [
                cmd("echo kw-bang"),
                cmd("echo kw-bang"),
                cmd("echo kw-bang"),
                cmd("echo kw-bong"),
                cmd("echo 'kw-quoted!!'"),
                cmd("exit"),
            ],
        }
    else:
        # Up is no recall in dash: the tty echoes ^[[A and dash's "not found"
        # prints the raw ESC [ A, which moves the cursor up, so the next prompt
        # is drawn over old text; what is left right of the typed line is then
        # read with it (a limit of reading lines off the screen), so Up is left out.
        c["history_repeat"] = {
            "description": "dash has no history recall: the same command typed again runs again, each listed",
            "steps": line("echo kw-rep") + line("echo kw-rep") + line("echo kw-rep") + exit_,
            "expected": [cmd("echo kw-rep"), cmd("echo kw-rep"), cmd("echo kw-rep"), cmd("exit")],
        }
        c["bang"] = {
            "description": "dash has no history expansion: !! is run as a command name (not found)",
            "steps": line("echo kw-bang") + line("!!") + exit_,
            "expected": [cmd("echo kw-bang"), cmd("!!"), cmd("exit")],
        }
    c["typeahead"] = {
        "description": "a command typed before the shell drew its first prompt (the tty echoes it"
        " at once), and one typed while a command was still running",
        "typeahead": keys("echo kw-ahead" + ENTER),
        "steps": line("echo kw-next")
        + [Type("sleep 1" + ENTER, settle=0.05)]
        + line("echo kw-during", settle=1.5)
        + exit_,
        "expected": [cmd("echo kw-ahead"), cmd("echo kw-next"), cmd("sleep 1"), cmd("echo kw-during"), cmd("exit")],
    }
    # An OSC left open swallows everything up to the next ESC or BEL, as on a
    # real terminal. bash (bracketed paste) and zsh start every prompt with an
    # ESC, which ends it, so their prompt lands mid-line after the text before
    # the OSC. dash's plain prompt has none: the rest of a dash session stays
    # invisible, on screen and to the extractor, so dash's case leaves it out.
    osc_steps = line("printf 'kw-bar\\033]0;unterminated\\n'") + line("echo kw-osc")
    osc_expected = [cmd("printf 'kw-bar\\033]0;unterminated\\n'"), cmd("echo kw-osc")]
    if shell == "dash":
        osc_steps, osc_expected = [], []
    c["midline_prompt"] = {
        "description": "output that leaves the cursor mid-line, so the shell draws its prompt there:"
        " printf without a newline"
        + (", an unterminated OSC that swallows the newline" if shell != "dash" else "")
        + ", a long line without a newline that wraps past eight rows"
        + ("; zsh's PROMPT_SP moves the prompt to a line of its own" if shell == "zsh" else ""),
        "steps": line("printf kw-foo")
        + line("echo kw-mid")
        + osc_steps
        + line("printf '%0900d' 0")
        + line("echo kw-long")
        + exit_,
        "expected": [cmd("printf kw-foo"), cmd("echo kw-mid")]
        + osc_expected
        + [cmd("printf '%0900d' 0"), cmd("echo kw-long"), cmd("exit")],
    }
    if shell == "bash":
        c["osc133"] = {
            "description": "a prompt with OSC 133 shell-integration marks",
            "prompt": "osc133",
            "steps": line("echo marked") + line("ls -d /tmp") + exit_,
            "expected": [cmd("echo marked"), cmd("ls -d /tmp"), cmd("exit")],
        }
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", default=[], help="SHELL or SHELL/CASE")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    shells = ["bash", "dash", "zsh"]
    todo = []
    for shell in shells:
        if not shutil.which(shell):
            print(f"skip {shell}: not installed", file=sys.stderr)
            continue
        for name, case in cases_for(shell).items():
            key = f"{shell}/{name}"
            if args.only and not any(o == shell or o == key for o in args.only):
                continue
            todo.append((shell, name, case))
    if args.list:
        for shell, name, _ in todo:
            print(f"{shell}/{name}")
        return
    if os.geteuid() != 0:
        sys.exit("record.py needs root: it creates test users and starts a local sshd")
    ensure_users()
    if any(n == "nested_ssh" for _, n, _ in todo):
        ensure_sshd()
    try:
        for shell, name, case in todo:
            rec = record_case(shell, case)
            path = save(shell, name, case, rec)
            print(f"recorded {path} ({len(rec.events)} events)")
    finally:
        stop_sshd()


if __name__ == "__main__":
    main()
