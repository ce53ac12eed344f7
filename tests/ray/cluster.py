"""A local Ray cluster for snakepen's Ray test tier: a head and one more
node on this machine, started with Ray's own test helper
(`ray.cluster_utils.Cluster`), with no dashboard.

It prints one JSON line, {"address": ..., "head": NODE_ID, "worker": NODE_ID},
then reads commands from stdin, one per line:
  kill-worker-node   the second node dies at once (its processes killed)
  add-worker-node    a new second node joins; prints {"worker": NODE_ID}
When stdin closes (the tests ended, however they ended: the kernel closes
the test process's end) it shuts the whole cluster down and exits.
"""

import json
import os
import signal
import sys


def main():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    # Ray registers nodes under this machine's own address whatever they
    # are told (it rewrites a loopback bootstrap address to it), so the
    # nodes keep the default; the tests reach the cluster at 127.0.0.1.
    node_args = {"num_cpus": 4}
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(node_args, include_dashboard=False,
                            resources={"head": 100}),
    )
    worker = cluster.add_node(**node_args, resources={"second": 100})
    cluster.wait_for_nodes()
    out = sys.stdout
    port = cluster.address.rsplit(":", 1)[1]
    out.write(json.dumps({"address": "127.0.0.1:" + port, "head": cluster.head_node.node_id,
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
