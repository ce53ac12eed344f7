"""Takes a while to import, as modules that load models do."""
import os
import time

time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "1")))


def ping_me():
    return "pong"
