"""Benchmark: a minute of the model API under 32 clients (issue 20), against the server's own
state after a warm-up measured in the same run.

Targets, checked and printed:
- no dropped connection and no wrong answer: every one of the minute's requests is answered
  200 with the right prediction (one run once dropped 2 of 3,279; the cause, uvicorn's 5 s
  keep-alive firing during a stall, is also covered by a test in tests/web/test_model_api.py);
- no memory growth: the server's resident memory, its model workers included, over the last
  10 s of the minute is at most 5 % + 8 MB above what it was after the 10 s warm-up.

32 threads, each with its own keep-alive ``requests`` session (a real client, as users have),
three of four calling ``/invocations`` with an iris row and one of four ``/predict`` with a
32x32 PNG for the U-Net; one ``crispml serve`` process. The noise of this machine shows in the
table: requests per 10 s window and the memory's spread over the minute.

    .venv/bin/python bench/api_soak.py [--seconds 60] [--clients 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_api import IRIS_ROW, Server, free_port, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crispml-bench-soak-") as tmp:
        work = Path(tmp)
        _, (key, picture) = train(work / "home")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
        server = Server(
            [sys.executable, "-m", "crispml", "--home", str(work / "home"), "serve",
             "--port", str(port)],
            f"http://127.0.0.1:{port}", work / "crispml.log", env,
        ).wait("/readyz")  # fmt: skip
        try:
            windows, rss, errors = soak(server, key, picture, args)
        finally:
            server.stop()
    report(windows, rss, errors, args)


def soak(
    server: Server, key: str, picture: str, args: argparse.Namespace
) -> tuple[list[int], dict[str, list[int]], list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    rows = {"dataframe_records": [IRIS_ROW]}
    images = {"images": [picture], "Model_path": "bench-unet"}
    stop = threading.Event()
    errors: list[str] = []
    answered = [0]

    def client(index: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    if index % 4:
                        res = session.post(
                            f"{server.url}/invocations?model=bench-rf",
                            json=rows, headers=headers, timeout=30,
                        )  # fmt: skip
                        ok = res.status_code == 200 and res.json()["predictions"] == ["virginica"]
                    else:
                        res = session.post(
                            f"{server.url}/predict", json=images, headers=headers, timeout=30
                        )
                        ok = res.status_code == 200 and len(res.json()["Responses"]) == 1
                    if not ok:
                        errors.append(f"{res.status_code} {res.text[:200]}")
                except requests.RequestException as error:  # a dropped connection
                    errors.append(repr(error))
                answered[0] += 1

    def resident() -> int:
        proc = psutil.Process(server.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    try:
        wait_until(time.monotonic() + args.warm_up)
        rss: dict[str, list[int]] = {"warm": [resident()], "minute": []}
        del errors[:]  # the minute is what is measured
        windows, counted, began = [], answered[0], time.monotonic()
        for second in range(1, args.seconds + 1):
            wait_until(began + second)
            rss["minute"].append(resident())
            if second % 10 == 0:
                windows.append(answered[0] - counted)
                counted = answered[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return windows, rss, errors


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))  # a clock, not a wait for an event


def report(
    windows: list[int], rss: dict[str, list[int]], errors: list[str], args: argparse.Namespace
) -> None:
    mib = 1024 * 1024
    print(f"{args.clients} clients, {args.warm_up} s of warm-up, then {args.seconds} s:")
    print("| window | requests | requests/s |")
    print("| --- | ---: | ---: |")
    for index, count in enumerate(windows):
        print(f"| {index * 10}-{index * 10 + 10} s | {count} | {count / 10:.0f} |")
    minute = rss["minute"]
    print()
    print(
        f"Memory (server and workers): {rss['warm'][0] / mib:.1f} MiB after the warm-up; over the "
        f"minute {min(minute) / mib:.1f} to {max(minute) / mib:.1f} MiB."
    )
    print()
    end = sum(minute[-10:]) / 10
    limit = rss["warm"][0] * 1.05 + 8e6
    total = sum(windows)
    print("| target | measured | met |")
    print("| --- | --- | --- |")
    print(
        f"| no dropped connection, no wrong answer | {len(errors)} of {total} requests | "
        f"{'yes' if not errors else 'no'} |"
    )
    print(
        f"| memory over the last 10 s <= after the warm-up x 1.05 + 8 MB | "
        f"{end / mib:.1f} MiB (limit {limit / mib:.1f} MiB) | {'yes' if end <= limit else 'no'} |"
    )
    for error in errors[:5]:
        print("error:", error)
    if errors or end > limit:
        sys.exit(1)


if __name__ == "__main__":
    main()
