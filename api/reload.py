"""Roll out the model at the server's MODEL_PATH: ``python -m api.reload`` (``make reload``).

Sends SIGHUP to the supervisor of the server on ``PORT`` (default 4002, as ``python -m api.serve``), found by
the pid in its state folder. The server's log then says whether the new version is in service or why it was
refused (the old one then stays). In the image: ``docker kill -s HUP <container>``.
"""

from __future__ import annotations

import os
import signal
import sys

from api.settings import listen_port
from intent_lib.paths import SUPERVISOR_PID_FILE, server_state_dir


def main() -> int:
    port = listen_port()
    pid_file = server_state_dir(port) / SUPERVISOR_PID_FILE
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        print(f"reload: no server of this project listens on port {port} ({pid_file} names none).", file=sys.stderr)
        return 1
    print(f"reload: asked the server on port {port} (pid {pid}) to load its MODEL_PATH; its log says the outcome.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
