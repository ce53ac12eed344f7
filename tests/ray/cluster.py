"""A local Ray cluster for snakepen's Ray test tier: a head and one more
node on this machine, started with Ray's own test helper
(`ray.cluster_utils.Cluster`), bound to 127.0.0.1, with their own temp
folder and no dashboard.

It prints one JSON line, {"address": ..., "head": NODE_ID, "worker": NODE_ID},
then reads commands from stdin, one per line:
  kill-worker-node   the second node dies at once (its processes killed)
  add-worker-node    a new second node joins; prints {"worker": NODE_ID}
When stdin closes (the tests ended, however they ended) it shuts the whole
cluster down and exits; it also dies with its parent (PR_SET_PDEATHSIG).
"""

import ctypes
import json
import os
import signal
import sys


def die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        sys.exit(0)


def main():
    die_with_parent()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 4, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(node_args, include_dashboard=False,
                            resources={"head": 100}),
    )
    worker = cluster.add_node(**node_args, resources={"second": 100})
    cluster.wait_for_nodes()
    out = sys.stdout
    out.write(json.dumps({"address": cluster.address, "head": cluster.head_node.node_id,
                          "worker": worker.node_id}) + "\n")
    out.flush()

    def stop(*_):
        cluster.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "kill-worker-node" and worker is not None:
                cluster.remove_node(worker, allow_graceful=False)
                worker = None
                out.write(json.dumps({"killed": True}) + "\n")
            elif command == "add-worker-node":
                worker = cluster.add_node(**node_args, resources={"second": 100})
                cluster.wait_for_nodes()
                out.write(json.dumps({"worker": worker.node_id}) + "\n")
            out.flush()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
