"""Run inside a private network namespace by tests/core/test_ray_executor.py (not a test file).

Starts a real Ray head on loopback, runs jobs through crispml's JobService with the Ray
executor, stops the head, and prints what it saw as JSON on the last line.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from crispml.core.jobs import JobSpec
from crispml.services import bootstrap, build_services
from crispml.settings import Settings


def wait_ports_free(ports: tuple[int, ...], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    for port in ports:
        while True:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.2)


home = Path(sys.argv[1])
ray = str(Path(sys.executable).parent / "ray")
env = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_agent_register_timeout_ms": "120000",  # the agents may start slowly under load
}
start = [
    ray,
    "start",
    "--head",
    "--node-ip-address=127.0.0.1",
    "--dashboard-host=127.0.0.1",
    "--dashboard-port=8265",
    "--num-cpus=2",
    "--disable-usage-stats",
    # Fewer processes and less shared memory to set up: the head starts faster on a loaded
    # machine (Ray gives a raylet 30 s to register, a limit it does not let one change).
    "--include-log-monitor=false",
    "--object-store-memory=100000000",
    # The agents' ports given, not picked: with a port left to the agent, the raylet waits for
    # the file the agent writes it to, and on a loaded machine that wait timed out and crashed
    # the raylet ("Timed out waiting for file .../metrics_agent_port_...").
    "--dashboard-agent-grpc-port=52366",
    "--dashboard-agent-listen-port=52365",
    "--runtime-env-agent-port=52367",
    "--metrics-export-port=52368",
]
PORTS = (6379, 8265, 52365, 52366, 52367, 52368)


def start_head() -> None:
    """``ray start``; when it fails, what it said and the tail of its processes' logs."""
    done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        logs = Path("/tmp/ray/session_latest/logs")
        names = ("raylet.out", "raylet.err", "gcs_server.out", "gcs_server.err", "dashboard.log")
        tails = [
            f"--- {name}\n{(logs / name).read_text(errors='replace')[-800:]}"
            for name in names
            if (logs / name).is_file()
        ]
        raise SystemExit(f"ray start failed:\n{done.stdout}\n{done.stderr}\n" + "\n".join(tails))


seen: dict[str, object] = {}
try:
    start_head()  # inside: a head that half-started is stopped too
    svc = build_services(
        Settings(
            home=home,
            admin_password="tulip-meadow-4821",
            jobs_executor="ray",
            seed_demo_project=False,
        )
    )
    bootstrap(svc)
    admin = svc.auth.first_admin()
    jobs = svc.jobs

    def wait(job_id: str, statuses: tuple[str, ...], timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = jobs.get(admin.id, job_id).status
            if status in statuses:
                return status
            time.sleep(0.3)
        return jobs.get(admin.id, job_id).status

    long = jobs.submit(
        admin.id,
        admin.username,
        JobSpec(
            [
                sys.executable,
                "-c",
                "import time; print('hello from ray', flush=True); time.sleep(120)",
            ],
            name="on-ray",
        ),
    )
    seen["long_running"] = wait(long.id, ("running",))
    deadline = time.monotonic() + 30
    while "hello from ray" not in jobs.log_tail(jobs.get(admin.id, long.id)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
    seen["long_log"] = "hello from ray" in jobs.log_tail(jobs.get(admin.id, long.id))
    jobs.stop(admin.id, long.id, actor="admin")
    seen["long_final"] = wait(long.id, ("stopped", "failed", "succeeded"))
    quick = jobs.submit(
        admin.id,
        admin.username,
        JobSpec([sys.executable, "-c", "print('done on ray')"], name="quick"),
    )
    seen["quick_final"] = wait(quick.id, ("succeeded", "failed", "stopped"))
    seen["quick_exit"] = jobs.get(admin.id, quick.id).exit_code
    seen["executor"] = jobs.get(admin.id, quick.id).executor
    orphan = jobs.submit(
        admin.id,
        admin.username,
        JobSpec([sys.executable, "-c", "import time; time.sleep(300)"], name="orphan"),
    )
    seen["orphan_running"] = wait(orphan.id, ("running",))
finally:
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
# The head is gone: history and logs are still in crispml's store.
svc = build_services(Settings(home=home, jobs_executor="ray"))
quick_job = next(j for j in svc.jobs.history(None) if j.name == "quick")
seen["log_after_head_stop"] = svc.jobs.log_tail(quick_job)
# A new head has forgotten the job that ran when the old one died: it is marked lost. The old
# head's processes may still hold its ports for a moment after `ray stop`: wait until they are
# free (a condition, not a sleep), or a new head fails to bind them.
wait_ports_free(PORTS)
try:
    start_head()
    history = {j.name: (j.status, j.exit_code) for j in svc.jobs.history(None)}
    seen["history_after_head_restart"] = history
    seen["orphan_error"] = next(j for j in svc.jobs.history(None) if j.name == "orphan").error
finally:
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
print(json.dumps(seen))
