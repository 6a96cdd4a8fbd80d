# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one subprocess runner and the one secret masker.

Plain Python (standard library only), no Ansible imports.

- ``run(argv, ...)``: runs a command (optionally as another OS user through ``runuser``,
  with an environment, a timeout, a new session), returns a ``Result`` (argv, returncode,
  stdout, stderr) with every secret masked, and raises ``ProcError`` (the masked command,
  the exit code and the tail of stderr) when ``check`` is set and the command fails, times
  out or cannot start.
- ``mask(text, secrets)``: replaces each secret where it stands as a whole token (never
  inside an unrelated word: a short password such as ``ab`` leaves ``about`` alone), in
  its URL-encoded form too, and the value of ``password=`` style keys and of the password
  part of ``scheme://user:password@host`` URLs.
- ``stream(argv, on_line, ...)``: the same runner for a command whose output is too large to
  hold (``pg_waldump`` over gigabytes of WAL): each stdout line goes to ``on_line`` as it comes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import re
import signal
import subprocess
import tempfile
import threading

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

try:
    from urllib.parse import quote as _url_quote
except ImportError:  # pragma: no cover - Python 2 is not supported by the engine
    _url_quote = None

MASK = "********"
# Characters that end a token: a secret next to one of these (or at either end of the
# text) stands alone; next to anything else it is part of a longer word and stays.
_SEPARATORS = r"\s'\"`=:/@?&;,()\[\]{}<>|"
_SECRET_KEYS = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|key-secret|key_secret|secret_access_key|cipher-pass)"
    r"(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s'\"&;,]+)"
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s/]+)(@)")
TAIL_CHARS = 1500


class ProcError(DbarchError):
    """A command that failed, timed out or could not start. The message names the masked
    command, the exit code and the tail of its stderr; never a secret."""

    def __init__(self, message, argv=None, returncode=None, stderr_tail=None, timed_out=False):
        super(ProcError, self).__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


class Result:
    """What a command did: argv (masked), returncode, stdout, stderr (masked)."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.returncode == 0


def _variants(secret):
    text = str(secret)
    out = {text}
    if _url_quote is not None:
        out.add(_url_quote(text, safe=""))
    return out


def mask(text, secrets=()):
    """``text`` with every secret masked as a whole token (see the module docstring)."""
    if text is None:
        return None
    text = str(text)
    values = set()
    for secret in secrets or ():
        if secret not in (None, ""):
            values |= _variants(secret)
    for value in sorted(values, key=len, reverse=True):
        pattern = r"(?<![^%s])%s(?![^%s])" % (_SEPARATORS, re.escape(value), _SEPARATORS)
        text = re.sub(pattern, MASK, text)

    def keep_quotes(match):
        value = match.group(3)
        quote = value[0] if value[:1] in ("'", '"') else ""
        return "%s%s%s%s%s" % (match.group(1), match.group(2), quote, MASK, quote)

    text = _SECRET_KEYS.sub(keep_quotes, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)


def mask_argv(argv, secrets=()):
    return [mask(str(part), secrets) for part in argv]


def current_user():
    return pwd.getpwuid(os.geteuid()).pw_name


def clean_env(extra=None, drop_prefixes=("PG",), keep=()):
    """This process's environment without variables starting with ``drop_prefixes`` (except
    those in ``keep``), with a C.UTF-8 locale, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep or not any(k.startswith(prefix) for prefix in drop_prefixes)
    }
    env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    env.update(extra or {})
    return env


def as_user(argv, run_as=None):
    """argv run as OS user ``run_as`` (``runuser -u``, needs root); argv itself for the current user."""
    if not run_as or run_as == current_user():
        return list(argv)
    if os.geteuid() != 0:
        raise ProcError(
            "%s must run as OS user %s but this process runs as %s; run as root or as %s"
            % (os.path.basename(str(argv[0])), run_as, current_user(), run_as)
        )
    return ["runuser", "-u", run_as, "--"] + list(argv)


def run(
    argv,
    env=None,
    run_as=None,
    timeout=None,
    check=True,
    secrets=(),
    cwd=None,
    new_session=False,
    what=None,
    stdin_text=None,
    mask_stdout=True,
):
    """Run ``argv``; returns a Result (stdout/stderr as text, secrets masked).

    ``env``: the whole environment (None: this process's). ``run_as``: OS user (runuser when
    it differs from the current one). ``check``: raise ProcError on a non-zero exit. A timeout
    or a command that cannot start always raises ProcError. ``mask_stdout=False`` keeps stdout
    as the command wrote it (a document that carries no secret, such as rendered SVG, where a
    ``password: text`` column must stay); stderr and the command are always masked.
    """
    what = what or os.path.basename(str(argv[0]))
    full = as_user(argv, run_as)
    shown = " ".join(mask_argv(argv, secrets))
    try:
        out = subprocess.run(
            full,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
            start_new_session=new_session,
            input=stdin_text,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProcError(
            "%s timed out after %ss: %s" % (what, timeout, shown),
            argv=mask_argv(full, secrets),
            timed_out=True,
        ) from None
    except OSError as exc:
        raise ProcError(
            "%s could not run (%s): %s" % (what, exc, shown), argv=mask_argv(full, secrets)
        ) from None
    res = Result(
        mask_argv(full, secrets),
        out.returncode,
        mask(out.stdout or "", secrets) if mask_stdout else (out.stdout or ""),
        mask(out.stderr or "", secrets),
    )
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout or "").strip()[-TAIL_CHARS:]
        raise ProcError(
            "%s failed (exit %d): %s\ncommand: %s" % (what, res.returncode, tail, shown),
            argv=res.argv,
            returncode=res.returncode,
            stderr_tail=tail,
        )
    return res


def stream(argv, on_line, env=None, run_as=None, timeout=None, cwd=None, what=None, secrets=()):
    """Run ``argv`` and hand each line of its stdout (without the line break) to ``on_line`` as it
    is written, so an output of any size is never held in memory. Returns a Result whose stdout is
    empty and whose stderr is masked; the caller judges the exit code. A timeout (the process is
    killed) or a command that cannot start raises ProcError, as does an exception of ``on_line``
    (the process is killed first, and the exception propagates)."""
    what = what or os.path.basename(str(argv[0]))
    full = as_user(argv, run_as)
    shown = " ".join(mask_argv(argv, secrets))
    with tempfile.TemporaryFile(mode="w+") as err:
        try:
            child = subprocess.Popen(
                full,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=cwd,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcError(
                "%s could not run (%s): %s" % (what, exc, shown), argv=mask_argv(full, secrets)
            ) from None
        expired = threading.Event()

        def kill():
            # The whole process group: a child of the command (runuser's) would keep stdout open.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except OSError:
                child.kill()

        def expire():
            expired.set()
            kill()

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            for line in child.stdout:
                on_line(line.rstrip("\n"))
        except BaseException:
            kill()
            child.wait()
            raise
        finally:
            if timer:
                timer.cancel()
            child.stdout.close()
        returncode = child.wait()
        if expired.is_set():
            raise ProcError(
                "%s timed out after %ss: %s" % (what, timeout, shown),
                argv=mask_argv(full, secrets),
                timed_out=True,
            )
        err.seek(0)
        return Result(mask_argv(full, secrets), returncode, "", mask(err.read(), secrets))
