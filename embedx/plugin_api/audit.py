"""A file-system audit of one ``embedx`` process tree: every path it opened, created, renamed,
unlinked or executed, as the kernel saw it (``strace -f``), checked against an allowed set.

This is the proof behind the README's trust policy: a hostile file can only be handled safely if
nothing outside the file, its own side paths, the output the user named and embedx's cache is
ever touched. strace sees what libhdf5, TensorFlow's C++ file system and every other native
library do, which Python's audit hooks cannot. Only calls that succeeded count: a refused
``open(O_NOFOLLOW)`` touched nothing.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STRACE = shutil.which("strace")
TEXTS = ["a gripping film", "dull and long", "a gripping film", "fine", "the plot thickens"]
SECRET = b"root:x:0:0:the bytes of a file outside the feature file\n"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EMBEDX = str(Path(sys.executable).parent / "embedx")

#: every call that names a path or acts on a file (stat-family calls read metadata only: not traced)
CALLS = ("open,openat,openat2,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,"
         "symlink,symlinkat,truncate,ftruncate,chmod,fchmod,fchmodat,chown,fchown,fchownat,lchown,utimensat,"
         "mknod,mknodat,execve,execveat")
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
_ALWAYS_WRITES = {"rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "link",
                  "linkat", "symlink", "symlinkat", "truncate", "ftruncate", "chmod", "fchmod", "fchmodat", "chown",
                  "fchown", "fchownat", "lchown", "utimensat", "mknod", "mknodat"}
#: where any process may write outside the sandbox: nothing a user owns
SYSTEM_WRITABLE = ("/dev/null", "/dev/shm/", "/dev/tty", "/dev/pts/", "/proc/self/", "/proc/thread-self/")

_THREAD_NAME = re.compile(r"/proc/(?:self|\d+)/task/\d+/comm")
_LINE = re.compile(r"^(?P<call>\w+)\((?P<args>.*)\)\s+= (?P<ret>-?\d+|\?)(?:<(?P<retpath>(?:[^>\\]|\\.)*)>)?")
_FD = re.compile(r"^(?:AT_FDCWD|\d+)<(?P<path>(?:[^>\\]|\\.)*)>$")


@dataclass
class Touch:
    pid: int
    call: str
    paths: list[str]  # effective paths: the folder part resolved, the last component as named
    target: str | None  # for open: the file the returned descriptor really is
    write: bool
    line: str


@dataclass
class Audit:
    returncode: int
    stdout: str
    stderr: str
    touches: list[Touch] = field(default_factory=list)
    hung: bool = False

    @property
    def execs(self) -> list[Touch]:
        return [t for t in self.touches if t.call.startswith("execve")]


def _unescape(text: str) -> str:
    return codecs.escape_decode(text.encode("latin-1", "backslashreplace"))[0].decode("utf-8", "surrogateescape")


def _split_args(args: str) -> list[str]:
    parts, depth, quoted, current, i = [], 0, False, [], 0
    while i < len(args):
        ch = args[i]
        if quoted:
            current.append(ch)
            if ch == "\\" and i + 1 < len(args):
                current.append(args[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current.append(ch)
        elif ch in "{[<":
            depth += 1
            current.append(ch)
        elif ch in "}]>":
            depth -= 1
            current.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if current:
        parts.append("".join(current).strip())
    return parts


def _string(arg: str) -> str | None:
    if arg.startswith('"'):
        return _unescape(arg[1:].rsplit('"', 1)[0])
    return None


def _fd_path(arg: str) -> str | None:
    match = _FD.match(arg)
    return _unescape(match.group("path")) if match else None


def _effective(path: str, base: str | None) -> str:
    """``path`` as the kernel resolved it: relative to ``base``, every folder link followed, the last
    component as named (links that still exist after the run are followed now, as they were then)."""
    joined = path if path.startswith("/") or base is None else os.path.join(base, path)
    head, tail = os.path.split(os.path.normpath(joined))
    return os.path.join(os.path.realpath(head), tail) if tail else os.path.realpath(head)


def _parse(pid: int, line: str) -> Touch | None:
    match = _LINE.match(line)
    if not match or match.group("ret") == "?" or match.group("ret").startswith("-"):
        return None  # failed calls touched nothing
    call, args = match.group("call"), _split_args(match.group("args"))
    retpath = _unescape(match.group("retpath")) if match.group("retpath") else None
    paths: list[str] = []
    strings_seen, base = 0, None
    for arg in args:
        fd = _fd_path(arg)
        if fd is not None:
            base = fd
            if call in ("ftruncate", "fchmod", "fchown"):
                paths.append(fd)
            continue
        text = _string(arg)
        if text is None:
            continue
        strings_seen += 1
        if call in ("symlink", "symlinkat") and strings_seen == 1:
            continue  # the link's content, not a path it touches
        if call in ("execve", "execveat") and strings_seen > 1:
            break
        paths.append(_effective(text, base))
        base = None  # a folder descriptor applies to the path right after it
    flags = " ".join(args)
    opens = call in ("open", "openat", "openat2", "creat")
    write = call in _ALWAYS_WRITES or (opens and (call == "creat" or any(f in flags for f in _WRITE_FLAGS)))
    return Touch(pid, call, paths, retpath if opens else None, write, line)


def run_traced(args: list[str], *, cwd: Path, env: dict[str, str], log_dir: Path, timeout: float = 120,
               stdin: bytes | None = None) -> Audit:
    """Run ``args`` under ``strace -f`` and collect every successful file call of every process."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("trace.*"):
        old.unlink()
    if STRACE is None:
        raise RuntimeError("strace is not installed: the trust audit needs it")
    command = [STRACE, "-ff", "-qq", "-y", "-s", "4096", "-e", f"trace={CALLS}", "-e", "signal=none",
               "-o", str(log_dir / "trace"), *args]
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: a tracee blocked on a FIFO outlives strace
        out, err = proc.communicate()
        err += f"\nerror: HUNG: no answer in {timeout:.0f} s".encode()
    audit = Audit(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    audit.hung = b"HUNG: no answer" in err
    for trace in sorted(log_dir.glob("trace.*")):
        pid = int(trace.suffix[1:])
        for line in trace.read_text("utf-8", "replace").splitlines():
            touch = _parse(pid, line)
            if touch is not None:
                audit.touches.append(touch)
    return audit


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


@dataclass
class Allowed:
    """What one command may touch. Paths are compared after resolving folder links."""

    sandbox: str  # everything a hostile sender could have placed or aimed at lies in here
    write: list[str]  # roots that may be created, written, renamed or deleted
    read: list[str]  # further roots that may be opened for reading
    prefixes: list[str] = field(default_factory=list)  # sibling names (``/d/FILE.h5``): ``/d/FILE.h5*``
    executables: list[str] = field(default_factory=list)

    def may_write(self, path: str) -> bool:
        if _under(path, self.write) or any(_sibling(path, p) for p in self.prefixes):
            return True
        if _THREAD_NAME.fullmatch(path):
            return True  # a native library naming its own threads (TensorFlow does)
        return not _under(path, [self.sandbox]) and path.startswith(SYSTEM_WRITABLE)

    def may_read(self, path: str) -> bool:
        if self.may_write(path) or _under(path, self.read):
            return True
        return not _under(path, [self.sandbox])


def _sibling(path: str, prefix: str) -> bool:
    """``path`` is one of the side paths embedx keeps beside ``prefix`` (a feature file), or inside one."""
    folder, name = os.path.split(prefix)
    if os.path.dirname(path) != folder and not path.startswith(os.path.join(folder, name) + "."):
        return False
    first = path[len(folder) + 1:].split("/", 1)[0]
    return first == name or first.startswith(name + ".") or first.startswith(f".{name}.")


def violations(audit: Audit, allowed: Allowed, forbidden: list[str]) -> list[str]:
    """Every touch outside ``allowed`` or inside ``forbidden``, as a readable line; empty when clean."""
    found = []
    for touch in audit.touches:
        names = list(touch.paths) + ([touch.target] if touch.target else [])
        if touch.call.startswith("execve"):
            exe = os.path.realpath(names[0]) if names else "?"
            if exe not in allowed.executables:
                found.append(f"spawned {names[0] if names else '?'}: {touch.line}")
            continue
        for name in names:
            if _under(name, forbidden):
                found.append(f"touched {name}: {touch.line}")
            elif touch.write and not allowed.may_write(name):
                found.append(f"wrote {name}: {touch.line}")
            elif not allowed.may_read(name):
                found.append(f"read {name}: {touch.line}")
    return found


def python_executables() -> list[str]:
    """The interpreters embedx may start (its own, for the time-limited file check)."""
    names = {os.path.realpath(sys.executable), os.path.realpath(sys._base_executable)}  # type: ignore[attr-defined]
    bin_dir = Path(sys.executable).parent
    names |= {os.path.realpath(p) for p in bin_dir.glob("python*")}
    names |= {str(bin_dir / "embedx"), os.path.realpath(bin_dir / "embedx")}
    uname = shutil.which("uname")  # `import h5py` asks Python's platform module, which runs `uname -p`
    if uname:
        names.add(os.path.realpath(uname))
    return sorted(names)


class Sandbox:
    """A folder holding everything one case involves: the sender's files, the victim, a home, a cache."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.work, self.victim = self.root / "work", self.root / "victim"
        self.home, self.cache, self.tmp = self.root / "home", self.root / "cache", self.root / "tmp"
        for folder in (self.work, self.victim, self.home, self.cache, self.tmp):
            folder.mkdir()
        (self.victim / "secret.txt").write_bytes(SECRET)
        (self.victim / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + SECRET)
        (self.victim / "notes.h5").write_bytes(b"the user's own h5 file\n")
        self.store = self.work / "features.h5"
        self.plugins = "example"  # installed plugins to load (EMBEDX_LOAD_PLUGINS)
        self.input = self.work / "more.txt"
        self.input.write_text("a new text\nanother new one\n", encoding="utf-8")

    def build_store(self, path: Path | None = None) -> Path:
        import embedx

        path = path or self.store
        embedx.extract(TEXTS, "hashing-ngrams", path, name="t", options={"dim": 8})
        return path

    def snapshot(self) -> dict[str, tuple[str, ...] | tuple[str, str, int]]:
        """Every entry of the victim folder: kind, bytes and link target, so any change shows."""
        found: dict[str, tuple[str, ...] | tuple[str, str, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.victim):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode):
                    with open(path, "rb") as handle:
                        found[path] = ("file", hashlib.sha256(handle.read()).hexdigest(), info.st_mtime_ns)
                elif stat.S_ISLNK(info.st_mode):
                    found[path] = ("link", os.readlink(path))
                else:
                    found[path] = (stat.filemode(info.st_mode),)
        return found

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDX_", "XDG_"))}
        env.update(HOME=str(self.home), EMBEDX_CACHE_DIR=str(self.cache), TMPDIR=str(self.tmp),
                   PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(self.cache / "mpl"), COLUMNS="200",
                   EMBEDX_LOAD_PLUGINS=self.plugins)  # the core's commands; plugins have their own audits
        return env

    def warm_matplotlib(self) -> None:
        """Build matplotlib's font cache in this sandbox before a traced run: the first import on a
        machine runs ``fc-list`` (Keras imports matplotlib with TensorFlow), which is set-up, not
        anything a file asked for."""
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=self.env(), check=True,
                       capture_output=True, timeout=300)

    def allowed(self, *, stores: Sequence[Path] = (), outputs: Sequence[Path] = (), reads: Sequence[Path] = ()
                ) -> Allowed:
        real = [os.path.realpath(p) for p in [*stores, *outputs]]  # each with its side paths and temporaries
        return Allowed(sandbox=str(self.root),
                       write=[str(self.cache), str(self.tmp), str(self.home)],
                       read=[os.path.realpath(p) for p in reads] + [str(self.work)],
                       prefixes=real, executables=python_executables())

    def run(self, args: list[str], allowed: Allowed, *, timeout: float = 120) -> Audit:
        before = self.snapshot()
        audit = run_traced([EMBEDX, *args], cwd=self.work, env=self.env(), log_dir=self.root / "trace",
                           timeout=timeout)
        problems = violations(audit, allowed, forbidden=[str(self.victim)])
        if self.snapshot() != before:
            problems.append("the victim folder changed")
        printed = audit.stdout + audit.stderr
        if "Traceback" in printed:
            problems.append("a traceback was printed")
        control = CONTROL.search(printed)
        if control:
            problems.append(f"a control character reached the terminal: {control.group()!r}")
        if audit.hung:
            problems.append("the command hung")
        elif audit.returncode not in (0, 1, 2):
            problems.append(f"exit status {audit.returncode}")
        elif audit.returncode == 1 and args[0] == "check" and re.search(r"\b[\d,]+ problems? found", audit.stdout):
            pass  # check's own verdict: problems listed one per line, exit 1
        elif audit.returncode != 0:
            last = [line for line in audit.stderr.splitlines() if line.strip()][-1:] or [""]
            if not last[0].startswith("error:"):
                problems.append(f"failed without an error line: {audit.stderr[-500:]!r}")
        assert not problems, f"embedx {' '.join(args)}:\n" + "\n".join(problems[:20]) + f"\n{printed[-1500:]}"
        return audit
