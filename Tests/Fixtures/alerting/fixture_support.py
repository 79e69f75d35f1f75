"""What the alerting test fixtures share: announcing the bound port and dying with the test."""
import os
import threading
import time


def announce_port(ready_file: str, port: int) -> None:
    """Writes the port atomically, so the test never reads half a number."""
    temporary = ready_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as ready:
        ready.write(str(port))
    os.rename(temporary, ready_file)


def exit_with_parent() -> None:
    """Exits when the test process that started us is gone, even if it crashed before stopping us."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
