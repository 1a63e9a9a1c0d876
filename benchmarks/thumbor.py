"""thumbor, the peer `benchmarks.peers` compares the edge with: config, files and processes.

Configured as /work/shared/peerbench does it (`conf/thumbor.conf.tmpl`, `run.sh`): the file
loader rooted at a directory of sources, no storage, no result storage (so every request is a
decode + crop + resize + encode), JPEG quality 80 (thumbor's default, progressive). Several
single-process thumbors behind an nginx `least_conn` balancer, thumbor's documented production
layout; without nginx, thumbor's own `--processes N` (one shared socket: which process gets
the keep-alive connections is luck, so the figure is less steady). Stopping sends SIGTERM to
the processes this module started, waits, then kills what is left of them (by pid).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from benchmarks.stack import free_port, stop_tree, wait_answering

DEFAULT_BINARY = Path("/tmp/peers/thumbor-venv/bin/thumbor")
INSTALL_HINT = (
    "thumbor is not installed at {path}: install it with /work/shared/peerbench/setup.sh "
    "(a venv in /tmp/peers/thumbor-venv: `python3 -m venv /tmp/peers/thumbor-venv && "
    "/tmp/peers/thumbor-venv/bin/pip install thumbor`) or pass --thumbor PATH"
)
START_TIMEOUT_S = 60.0

THUMBOR_CONF = """\
# written by benchmarks/thumbor.py (as /work/shared/peerbench/conf/thumbor.conf.tmpl)
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root}
ALLOW_UNSAFE_URL = True
STORAGE = 'thumbor.storages.no_storage'  # originals are local files already
RESULT_STORAGE = None                    # every request transforms
QUALITY = 80                             # thumbor's default; PROGRESSIVE_JPEG stays True
ENGINE = 'thumbor.engines.pil'
ENGINE_THREADPOOL_SIZE = 0               # parallelism comes from the processes
"""

NGINX_LB_CONF = """\
# written by benchmarks/thumbor.py (as /work/shared/peerbench/conf/nginx-lb.conf.tmpl)
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fcgi; uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    upstream backends {{ least_conn; {servers} keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_buffering on;
        }}
    }}
}}
"""


def thumbor_conf(root: Path) -> str:
    """thumbor.conf serving the files under `root`, with nothing cached."""
    return THUMBOR_CONF.format(root=repr(str(root)))


def nginx_lb_conf(prefix: Path, port: int, backends: Sequence[int]) -> str:
    """nginx.conf balancing 127.0.0.1:`port` over the `backends` ports (least_conn)."""
    servers = " ".join(f"server 127.0.0.1:{p};" for p in backends)
    return NGINX_LB_CONF.format(prefix=prefix, port=port, servers=servers)


def place_sources(root: Path, files: dict[str, Path]) -> None:
    """`root/name` for each name -> source: a hard link where possible (same bytes, no copy)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        try:
            os.link(source, root / name)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source, root / name)


def thumbor_version(binary: Path) -> str:
    python = binary.parent / "python"
    out = subprocess.run(
        [str(python), "-c", "import thumbor, PIL; print(thumbor.__version__, PIL.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    words = out.stdout.split()
    return f"thumbor {words[0]} (Pillow {words[1]})" if len(words) == 2 else "thumbor ?"


class ThumborPeer:
    """`processes` thumbors serving `files` from `dir`, behind nginx when `balancer`."""

    def __init__(
        self, binary: Path, workdir: Path, files: dict[str, Path], processes: int, balancer: bool
    ) -> None:
        self.binary = binary
        self.dir = workdir
        self.files = files
        self.processes = processes
        self.balancer = balancer and shutil.which("nginx") is not None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def layout(self) -> str:
        if self.balancer:
            return f"{self.processes} thumbor processes behind nginx least_conn"
        return f"thumbor --processes {self.processes} (shared socket)"

    async def start(self) -> None:
        place_sources(self.dir / "sources", self.files)
        conf = self.dir / "thumbor.conf"
        conf.write_text(thumbor_conf(self.dir / "sources"), encoding="utf-8")
        try:
            if not self.balancer:
                self.spawn("thumbor", self.port, conf, "--processes", str(self.processes))
                await self.wait_healthy(self.url, "thumbor")
                await asyncio.sleep(1.0)  # the forked children start listening after the parent
                return
            ports = [free_port() for _ in range(self.processes)]
            for i, port in enumerate(ports):
                self.spawn(f"thumbor-{i + 1}", port, conf)
            for i, port in enumerate(ports):
                await self.wait_healthy(f"http://127.0.0.1:{port}", f"thumbor-{i + 1}")
            self.start_nginx(ports)
            await self.wait_healthy(self.url, "nginx")
        except BaseException:
            self.stop()
            raise

    def spawn(self, name: str, port: int, conf: Path, *extra: str) -> None:
        argv = [str(self.binary), "-i", "127.0.0.1", "-p", str(port), "-c", str(conf)]
        self.launch(name, [*argv, "-l", "error", *extra])

    def start_nginx(self, ports: Sequence[int]) -> None:
        prefix = self.dir / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_lb_conf(prefix, self.port, ports), encoding="utf-8")
        nginx = shutil.which("nginx") or "nginx"
        self.launch("nginx", [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])

    def launch(self, name: str, argv: list[str]) -> None:
        with open(self.dir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    async def wait_healthy(self, url: str, name: str) -> None:
        log = self.dir / f"{name}.log"
        await wait_answering(self.procs[name], url + "/healthcheck", name, log, START_TIMEOUT_S)

    def pids(self) -> dict[str, int]:
        """Root pid of each process tree started here, by name (`thumbor-1`, `nginx`)."""
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every process started here (nginx first), wait, SIGKILL what is left."""
        for name in sorted(self.procs, key=lambda n: n != "nginx"):
            proc = self.procs[name]
            stop_tree(proc, grace_s)
        self.procs.clear()
