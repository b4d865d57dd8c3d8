"""Signals: SIGTERM and Ctrl-C unwind as KeyboardInterrupt, and are remembered between stages."""

from __future__ import annotations

_RECEIVED: list[int] = []  # signals turned into KeyboardInterrupt during this command


def _raise_interrupt(signum, frame):
    _RECEIVED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_pending() -> bool:
    """True once SIGINT/SIGTERM arrived in this command.

    The KeyboardInterrupt is raised wherever Python happens to be, and library code
    can swallow it (observed: SIGTERM early in transcription, about 1 run in 20, the
    run then finished), so the main command also checks this between stages.
    """
    return bool(_RECEIVED)


def forget_unhandled_interrupt() -> None:
    """Keep exit status 130 after a handled interrupt.

    CPython sets a private flag when a KeyboardInterrupt passes through Python code
    run from C (``PyRun_String``, used by C extensions); at exit it then kills the
    process with SIGINT although we handled the interrupt (intermittent exit -2).
    """
    try:
        import ctypes

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, ValueError, AttributeError, OSError):  # other Pythons: nothing to reset
        pass


def install_sigterm_handler() -> None:
    """SIGTERM (and Ctrl-C, unless ignored) unwinds as KeyboardInterrupt, so ``finally`` blocks
    release locks and temp files; the signal is also recorded (``interrupt_pending``)."""
    import signal
    import threading

    _RECEIVED.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _raise_interrupt)
