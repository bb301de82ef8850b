"""Pseudo-terminal pairs standing in for a serial cable between an emulated device and the rig.

The device process writes frames on the master fd; the rig opens the slave path like any serial
port (pyserial). The slave is put in raw mode so the line discipline passes every byte unchanged:
no echo, no CR/LF translation, no signals on ^C, no XON/XOFF flow control on 0x11/0x13.
"""

from __future__ import annotations

import os
import tty

from arbsphere.errors import LinkError


def open_pty_pair() -> tuple[int, str]:
    """Open a pty pair in raw mode; return ``(master_fd, slave_path)``.

    The caller owns ``master_fd`` (pass it to the device process with ``Popen(pass_fds=...)``
    and close it when done). The slave fd is closed here and the rig reopens the slave by path
    (pyserial sets it raw again). Until then nothing may be written to the master: the pty
    driver resets a slave's termios on its last close, and bytes arriving in that cooked mode
    wait for a newline even after the rig opened it. The orchestrator opens the slave (the
    adapter) before it starts the device; whoever starts the device first holds the slave open
    in raw mode until the rig has it.
    """
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise LinkError(f"cannot open a pty pair: {exc}") from exc
    try:
        tty.setraw(slave)
        path = os.ttyname(slave)
    except OSError as exc:
        os.close(master)
        raise LinkError(f"cannot configure the pty slave (fd {slave}) as raw: {exc}") from exc
    finally:
        os.close(slave)
    return master, path
