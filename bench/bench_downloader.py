"""Downloader benchmark: our engine against aria2c and the original collector's downloader.

    python3 bench/bench_downloader.py [--runs 3] [--scenarios 1,2,3]

The GINA stand-in runs in a process of its own (``viirscollector gina-standin``)
with a per-connection rate limit and a per-request delay standing for the network.
Every client uses the same number of connections in the same run; every output's
MD5 is checked. MB = 10^6 bytes.

1. one 200 MB file, 4 connections, 10 MB/s per connection (target >= 0.95 x ideal);
2. 40 files of 8 MB, 4 connections, 10 MB/s per connection, 100 ms per request
   (target within 1.1 x the ideal, at least as fast as aria2c's best of
   ``-j1 -x4 -s4 -k1M`` and ``-j4 -x1``);
3. peak memory (max RSS) while fetching and verifying a 1 GB file, no rate limit
   (target under 100 MB).

Python clients are timed around their download call (interpreter start excluded),
aria2c and ``mirror_gina`` as whole processes. The original downloader
(tomputils.downloader, with six and future) is installed on first use into
``bench/.peers/site`` (git-ignored), never into the project's environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers" / "site"
#: A venv with the project installed as the image installs it (pip install ., not
#: editable), git-ignored like the peers: its Python starts without this machine's
#: site hooks (an editable finder, a CA-injection .pth: 86 ms to start vs 23 ms).
SHIPPED = BENCH / ".peers" / "shipped-venv"
sys.path.insert(0, str(REPO))

from report import machine, median, write_section  # noqa: E402

from avoviirscollector.netutil import free_port  # noqa: E402

MB = 1e6
CONNECTIONS = 4
RATE = 10e6
DELAY = 0.1
START = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1)


# -- clients run in their own process -------------------------------------------------------


def client_ours(urls: list[str], out: Path, connections: int) -> float:
    from avoviirscollector.mirror.downloader import Downloader, FileTask, Options

    tasks = [FileTask(u, out / u.rsplit("/", 1)[1]) for u in urls]
    began = time.monotonic()
    Downloader(Options(connections=connections)).run(tasks)
    seconds = time.monotonic() - began
    failed = [t.name for t in tasks if t.status != "done"]
    if failed:
        raise SystemExit(f"ours failed: {failed}")
    return seconds


def client_original(urls: list[str], out: Path, connections: int, verify: bool) -> float:
    """As the original mirror_gina did: one Downloader per file, files one after another."""
    sys.path.insert(0, str(PEERS))
    import logging

    from tomputils.downloader import Downloader

    logging.disable(logging.INFO)
    began = time.monotonic()
    for url in urls:
        path = out / url.rsplit("/", 1)[1]
        Downloader(max_con=connections).fetch(url, str(path))
        if verify:  # the original read the whole file to hash it
            hashlib.md5(open(path, "rb").read()).hexdigest()  # noqa: SIM115
    return time.monotonic() - began


def client_main(argv: list[str]) -> int:
    """``--client ours|original URLS_FILE OUT CONNECTIONS [verify]``: print seconds."""
    kind, urls_file, out, connections = argv[:4]
    urls = Path(urls_file).read_text().split()
    if kind == "ours":
        seconds = client_ours(urls, Path(out), int(connections))
    else:
        seconds = client_original(urls, Path(out), int(connections), "verify" in argv)
    print(json.dumps({"seconds": seconds}))
    return 0


# -- the harness ---------------------------------------------------------------------------


class Standin:
    """``viirscollector gina-standin`` in its own process."""

    def __init__(self, directory: Path, rate: float | None, delay: float):
        self.port = free_port()
        command = [sys.executable, "-m", "avoviirscollector.cli", "gina-standin"]
        command += ["--dir", str(directory), "--port", str(self.port), "--delay", str(delay)]
        if rate:
            command += ["--rate", str(rate)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.process.stdout.readline()  # printed once it listens
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_standin/stats", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_peers() -> bool:
    if (PEERS / "tomputils").is_dir():
        return True
    command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(PEERS)]
    result = subprocess.run([*command, "tomputils", "six", "future"], check=False)
    (BENCH / ".peers" / ".gitignore").write_text("*\n")
    return result.returncode == 0


def run_client(kind: str, standin: Standin, files: list[Path], scratch: Path, extra=()) -> dict:
    """Fetch ``files`` with one client; seconds, MD5 check, requests and connections used."""
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    urls = [f"{standin.url}/data/{p.name}" for p in files]
    before = standin.stats()
    if kind.startswith("mirror_gina"):
        seconds = run_mirror_gina(standin, scratch, shipped.get(kind))
        out = scratch / "viirs" / "sdr"
    elif kind.startswith("aria2c"):
        listing = scratch / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        command = ["aria2c", "-i", str(listing), "-d", str(out), *extra]
        command += [
            "--console-log-level=error",
            "--summary-interval=0",
            "--show-console-readout=false",
        ]
        command += ["--allow-overwrite=true", "--auto-file-renaming=false"]
        began = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - began
    else:
        listing = scratch / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        client = "ours" if kind == "ours" else "original"
        command = [sys.executable, __file__, "--client", client, str(listing), str(out)]
        result = subprocess.run(
            [*command, str(CONNECTIONS)], check=True, capture_output=True, text=True
        )
        seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    after = standin.stats()
    intact = all(md5(out / p.name) == md5_of[p] for p in files)
    return {
        "seconds": seconds,
        "intact": intact,
        "requests": after["file_requests"] - before["file_requests"],
        # minus the connection of the "after" stats request itself
        "connections": after["connections_opened"] - before["connections_opened"] - 1,
    }


md5_of: dict[Path, str] = {}
#: client name -> the mirror_gina script it runs (default: the one beside this Python)
shipped: dict[str, str] = {}
INSTALLED = "mirror_gina (whole process, installed as in the image)"
EDITABLE = "mirror_gina (whole process, this editable install)"
MIRROR_QUEUES = "queues:\n  - name: bench\n    satellite: snpp\n    bands: [{bands}]\n"


def mirror_gina_script() -> str:
    """The console script pip installed beside this Python, as the image runs it from
    /usr/local/bin; PATH may find a wrapper first (pyenv's shim adds ~80 ms of bash)."""
    beside = Path(sys.executable).parent / "mirror_gina"
    return str(beside) if beside.exists() else shutil.which("mirror_gina") or "mirror_gina"


def shipped_mirror_gina() -> str:
    """mirror_gina of this checkout installed as the Dockerfile installs it, in SHIPPED."""
    python = SHIPPED / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SHIPPED)], check=True)
        (BENCH / ".peers" / ".gitignore").write_text("*\n")
        subprocess.run([*pip, str(REPO)], check=True)  # the dependencies, once
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(REPO)], check=True)
    return str(SHIPPED / "bin" / "mirror_gina")


def run_mirror_gina(standin: Standin, scratch: Path, script: str | None = None) -> float:
    """The whole ``mirror_gina --now`` process: start-up, listing, fetch, verify, place."""
    from avoviirscollector.standins import synthetic_sdr

    base = scratch / "viirs"
    shutil.rmtree(base, ignore_errors=True)
    queues = scratch / "queues.yaml"
    queues.write_text(MIRROR_QUEUES.format(bands=", ".join(synthetic_sdr.MODERATE_SEGMENTS)))
    env = {
        **os.environ,
        "VIIRS_BASE_DIR": str(base),
        "GINA_URL": f"{standin.url}/products.json",
        "NUM_GINA_CONNECTIONS": str(CONNECTIONS),
        "VIIRS_LOG_LEVEL": "ERROR",
    }
    command = [script or mirror_gina_script(), "--now", "--queues", str(queues)]
    began = time.monotonic()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def summarize(kind: str, runs: list[dict]) -> dict:
    return {
        "client": kind,
        "seconds": median(r["seconds"] for r in runs),
        "all": [round(r["seconds"], 2) for r in runs],
        "intact": all(r["intact"] for r in runs),
        "requests": runs[-1]["requests"],
        "connections": runs[-1]["connections"],
    }


ARIA_SINGLE = ["-x4", "-s4", "-k1M"]
ARIA_SPLIT = ["-j1", "-x4", "-s4", "-k1M"]
ARIA_PARALLEL = ["-j4", "-x1"]


def scenario(files, rate, delay, clients, runs, scratch) -> list[dict]:
    standin = Standin(files[0].parent, rate, delay)
    try:
        results = {kind: [] for kind, _ in clients}
        for _ in range(runs):  # interleaved, so a slow moment of the machine hits every client
            for kind, extra in clients:
                results[kind].append(run_client(kind, standin, files, scratch, extra))
                print(f"  {kind}: {results[kind][-1]['seconds']:.2f} s", flush=True)
        return [summarize(kind, results[kind]) for kind, _ in clients]
    finally:
        standin.stop()


def row(result: dict, ideal: float, best_peer: float | None) -> str:
    seconds = result["seconds"]
    versus = f"{seconds / best_peer:.2f}" if best_peer else "-"
    return (
        f"| {result['client']} | {seconds:.2f} ({', '.join(map(str, result['all']))}) "
        f"| {ideal / seconds:.3f} | {seconds / ideal:.3f} | {versus} | {result['requests']} "
        f"| {result['connections']} | {'yes' if result['intact'] else '**NO**'} |"
    )


TABLE = (
    "| client | median s (runs) | speed / ideal | time / ideal | time / best aria2c "
    "| requests | connections | MD5 ok |\n|---|---|---|---|---|---|---|---|"
)


def one_big_file(scratch: Path, runs: int, peers: bool) -> str:
    from avoviirscollector.standins import synthetic_sdr

    directory = scratch / "s1"
    files = [synthetic_sdr.make_sdr_file(directory, "GITCO", "npp", START, size=200_000_000)]
    md5_of.update({p: md5(p) for p in files})
    clients = [("ours", ()), ("aria2c -x4 -s4 -k1M", ARIA_SINGLE)]
    if peers:
        clients.append(("original (tomputils)", ()))
    print("scenario 1: one 200 MB file", flush=True)
    results = scenario(files, RATE, 0.0, clients, runs, scratch)
    ideal = 200e6 / (CONNECTIONS * RATE)
    aria = results[1]["seconds"]
    ours = results[0]
    verdict = "met" if ideal / ours["seconds"] >= 0.95 else "**not met**"
    lines = [
        "### 1. One 200 MB file, 4 connections, 10 MB/s per connection, no request delay",
        "",
        f"Ideal: 200 MB / (4 x 10 MB/s) = {ideal:.2f} s. Target: speed >= 0.95 x ideal: "
        f"{verdict} ({ideal / ours['seconds']:.3f}).",
        "",
        TABLE,
        *(row(r, ideal, aria) for r in results),
    ]
    shutil.rmtree(directory)
    return "\n".join(lines)


def many_files(scratch: Path, runs: int, peers: bool) -> str:
    from avoviirscollector.standins import synthetic_sdr

    directory = scratch / "s2"
    bands = synthetic_sdr.MODERATE_SEGMENTS
    files = [
        synthetic_sdr.make_sdr_file(
            directory,
            bands[i % len(bands)],
            "npp",
            START + dt.timedelta(seconds=86 * (i // len(bands))),
            size=8_000_000,
        )
        for i in range(40)
    ]
    md5_of.update({p: md5(p) for p in files})
    shipped[INSTALLED] = shipped_mirror_gina()
    clients = [
        ("ours", ()),
        (INSTALLED, ()),
        (EDITABLE, ()),
        ("aria2c -j1 -x4 -s4 -k1M", ARIA_SPLIT),
        ("aria2c -j4 -x1", ARIA_PARALLEL),
    ]
    if peers:
        clients.append(("original (tomputils)", ()))
    print("scenario 2: 40 files of 8 MB", flush=True)
    results = scenario(files, RATE, DELAY, clients, runs, scratch)
    bandwidth = 320e6 / (CONNECTIONS * RATE)
    request_bound = bandwidth + 40 * DELAY / CONNECTIONS
    aria = min(r["seconds"] for r in results if r["client"].startswith("aria2c"))
    ours = results[0]["seconds"]
    whole = next(r["seconds"] for r in results if r["client"] == INSTALLED)
    editable = next(r["seconds"] for r in results if r["client"] == EDITABLE)
    parallel = next(r["seconds"] for r in results if r["client"] == "aria2c -j4 -x1")
    lines = [
        "### 2. 40 files of 8 MB, 4 connections, 10 MB/s per connection, 100 ms per request",
        "",
        f"Ideal (bandwidth only): 320 MB / (4 x 10 MB/s) = {bandwidth:.2f} s. Every client",
        "that fetches each file with at least one request on one of 4 connections also waits",
        f"40 x 100 ms / 4 = 1 s: request-bound ideal {request_bound:.2f} s. Only HTTP pipelining",
        "could hide those waits on 4 connections, and libcurl no longer pipelines (removed in",
        "7.65); the stand-in, like GINA, speaks HTTP/1.1 only.",
        f"Ours: {ours / bandwidth:.3f} x the bandwidth ideal, {ours / request_bound:.3f} x the "
        f"request-bound ideal, {ours / aria:.3f} x aria2c's best ({aria:.2f} s).",
        "Target within 1.1 x ideal: "
        + ("met" if ours <= 1.1 * bandwidth else "**not met** against the bandwidth-only ideal")
        + (", met against the request-bound ideal" if ours <= 1.1 * request_bound else "")
        + "; at least as fast as aria2c's best: "
        + ("met." if ours <= aria else "**not met**."),
        "The whole `mirror_gina --now` process (Python start-up, the products.json request, "
        "fetch, MD5 and HDF5 check of every file, fsync and rename into sdr/), installed as "
        "the image installs it (`pip install .` in a venv of its own), against "
        f"`aria2c -j4 -x1` (fetch only) in the same run: {whole:.2f} s vs {parallel:.2f} s, "
        f"{whole / parallel:.3f} x: "
        + ("met." if whole <= parallel else "**not met**.")
        + f" This checkout's editable install: {editable:.2f} s ({editable / parallel:.3f} x).",
        "",
        TABLE.replace("ideal", "bandwidth ideal"),
        *(row(r, bandwidth, aria) for r in results),
    ]
    shutil.rmtree(directory)
    return "\n".join(lines)


def _high_water_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss(command: list[str], env=None) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a child process.

    Read from /proc/PID/status VmHWM while it runs: ru_maxrss of a child also counts
    the memory of the (big) process that spawned it, so it would measure this script.
    """
    began = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _high_water_mb(process.pid) or 0.0)
        time.sleep(0.01)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} ended with status {process.returncode}")
    return peak, time.monotonic() - began


def big_memory(scratch: Path, runs: int, peers: bool) -> str:
    from avoviirscollector.standins import synthetic_sdr

    directory = scratch / "s3"
    files = [synthetic_sdr.make_sdr_file(directory, "GITCO", "npp", START, size=1_000_000_000)]
    print("scenario 3: memory for a 1 GB file", flush=True)
    standin = Standin(directory, None, 0.0)
    base = scratch / "viirs"
    queues = scratch / "queues.yaml"
    queues.write_text("queues:\n  - name: big\n    satellite: snpp\n    bands: [GITCO]\n")
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "GINA_URL": f"{standin.url}/products.json"}
    env["VIIRS_LOG_LEVEL"] = "WARNING"
    rows = []
    try:
        measured = {"mirror_gina (fetch + MD5 + HDF5 check + place)": []}
        if peers:
            measured["original (tomputils fetch + md5 of read())"] = []
        measured["aria2c -x4 -s4 -k1M (fetch only)"] = []
        for _ in range(runs):
            shutil.rmtree(base, ignore_errors=True)
            command = [sys.executable, "-m", "avoviirscollector.cli", "mirror", "--queues"]
            rss, seconds = peak_rss([*command, str(queues)], env)
            placed = base / "sdr" / files[0].name
            if not placed.exists():
                raise RuntimeError("mirror_gina did not place the 1 GB file")
            placed.unlink()
            measured["mirror_gina (fetch + MD5 + HDF5 check + place)"].append((rss, seconds))
            out = scratch / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            listing = scratch / "urls.txt"
            listing.write_text(f"{standin.url}/data/{files[0].name}\n")
            if peers:
                command = [sys.executable, __file__, "--client", "original", str(listing)]
                rss, seconds = peak_rss([*command, str(out), str(CONNECTIONS), "verify"])
                measured["original (tomputils fetch + md5 of read())"].append((rss, seconds))
                shutil.rmtree(out)
                out.mkdir()
            command = ["aria2c", "-i", str(listing), "-d", str(out), *ARIA_SINGLE, "-q"]
            measured["aria2c -x4 -s4 -k1M (fetch only)"].append(peak_rss(command))
            shutil.rmtree(out)
        for name, values in measured.items():
            rss = median(v[0] for v in values)
            rows.append(f"| {name} | {rss:.0f} | {median(v[1] for v in values):.1f} |")
        ours = median(v[0] for v in measured["mirror_gina (fetch + MD5 + HDF5 check + place)"])
    finally:
        standin.stop()
        shutil.rmtree(directory)
    verdict = "met" if ours < 100 else "**not met**"
    return "\n".join(
        [
            "### 3. Peak memory while fetching and verifying a 1 GB file (no rate limit)",
            "",
            f"Peak RSS of the whole process (VmHWM, sampled every 10 ms). Target under 100 MB: "
            f"{verdict} "
            f"({ours:.0f} MB).",
            "",
            "| client | peak RSS MB | seconds |",
            "|---|---|---|",
            *rows,
        ]
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["--client"]:
        return client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default="1,2,3")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the report")
    args = parser.parse_args(argv)
    if not shutil.which("aria2c"):
        print("aria2c is missing: apt-get install -y aria2", file=sys.stderr)
        return 2
    peers = ensure_peers()
    if not peers:
        print("could not install tomputils; the original downloader is left out", file=sys.stderr)
    aria = subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout
    import pycurl

    began = time.monotonic()
    sections = []
    results_dir = BENCH / "results"  # git-ignored
    results_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="downloader-", dir=results_dir) as tmp:
        scratch = Path(tmp)
        wanted = args.scenarios.split(",")
        if "1" in wanted:
            sections.append(one_big_file(scratch, args.runs, peers))
        if "2" in wanted:
            sections.append(many_files(scratch, args.runs, peers))
        if "3" in wanted:
            sections.append(big_memory(scratch, args.runs, peers))
    header = [
        "## Downloader: mirror_gina's engine vs aria2c and the original downloader",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d} on {machine()}; {pycurl.version.split()[1]}, "
        f"{aria.splitlines()[0]}; median of {args.runs} runs (all runs in parentheses), "
        f"clients interleaved; benchmark took {time.monotonic() - began:.0f} s.",
        "Reproduce: `python3 bench/bench_downloader.py` (`--runs N`, `--scenarios 1,2,3`).",
        "The GINA stand-in runs in its own process; MB = 10^6 bytes; *requests* and",
        "*connections* are counted by the stand-in (file GETs/HEADs, TCP connections accepted).",
        "Python clients are timed around their download call; aria2c as a whole process.",
    ]
    markdown = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("downloader", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
