"""Pure parts of `benchmarks.peers`: the avatar mix, URL forms, thumbor and nginx configs, rows."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import pyvips

from benchmarks import peermix as pm
from benchmarks.drive import Driver, Progress
from benchmarks.edgemetrics import EdgeCounters
from benchmarks.measure import Measurement
from benchmarks.peers import PeerBench, parse_args, write_results
from benchmarks.scenarios import AVATAR_SIZES, MID_SOURCES
from benchmarks.stack import SAMPLES, total_transform_processes
from benchmarks.thumbor import nginx_lb_conf, place_sources, thumbor_conf


def test_mix_has_every_user_size_pair_once_in_a_fixed_shuffled_order() -> None:
    pairs = pm.build_mix(50)
    assert len(pairs) == 50 * len(AVATAR_SIZES) and len(set(pairs)) == len(pairs)
    assert set(pairs) == {(u, s) for u in range(50) for s in AVATAR_SIZES}
    assert pairs == pm.build_mix(50)  # the same list for every row and every run
    assert pairs != pm.build_mix(50, seed=pm.MIX_SEED + 1)
    assert pairs[:10] != sorted(pairs)[:10]
    # shuffled across users: the first tenth already touches most users and every size
    head = pairs[: len(pairs) // 10]
    assert len({u for u, _ in head}) > 15 and {s for _, s in head} == set(AVATAR_SIZES)


def test_derivable_share_counts_requests_whose_photo_was_asked_before() -> None:
    pairs = [(0, 128), (0, 64), (0, 32), (1, 32), (1, 80), (1, 256), (1, 128)]
    assert pm.derivable_share(pairs, len(pairs)) == pytest.approx(5 / 7)
    assert pm.derivable_share(pairs, 3) == pytest.approx(2 / 3)
    assert math.isnan(pm.derivable_share(pairs, 0))
    # over a whole mix every size but a user's first: 4/5; a prefix sees fewer
    mix = pm.build_mix(4000)
    assert pm.derivable_share(mix, len(mix)) == pytest.approx(0.8)
    assert 0.5 < pm.derivable_share(mix, len(mix) // 2) < 0.7


@pytest.mark.parametrize("duration", [1.0, 8.0, 10.0, 30.0])
def test_default_users_outlast_the_run_at_the_rate_ceiling(duration: float) -> None:
    users = pm.mix_users(duration)
    assert users * len(AVATAR_SIZES) >= pm.RATE_CEILING * duration
    assert users * len(AVATAR_SIZES) < pm.RATE_CEILING * duration + 10 * len(AVATAR_SIZES) + 50


def test_edge_and_thumbor_urls_name_the_same_user_and_size() -> None:
    h = "0" * 31 + "1"
    assert pm.edge_path(h, 64) == f"/avatar/{h}?s=64"
    assert pm.thumbor_path(7, 128) == "/unsafe/128x128/u7.jpg"
    assert pm.user_file(7) == "u7.jpg"
    # user i gets the photo benchmarks.seed uploads for it: the six samples in turn
    assert [pm.user_photo(i).name for i in range(7)] == [*MID_SOURCES, MID_SOURCES[0]]
    assert all(pm.user_photo(i).parent == SAMPLES for i in range(6))
    assert min(AVATAR_SIZES) >= pm.WARM_SIZE * 2  # a warm-up variant can never stand in


@pytest.mark.parametrize(("progressive", "mode"), [(False, "baseline"), (True, "progressive")])
def test_jpeg_frame_reads_mode_and_size(progressive: bool, mode: str) -> None:
    image = pyvips.Image.black(37, 21, bands=3) + 128
    data = image.jpegsave_buffer(Q=80, interlace=progressive)
    assert pm.jpeg_frame(data) == (mode, 37, 21)


def test_jpeg_frame_refuses_what_is_not_a_jpeg() -> None:
    png = (pyvips.Image.black(4, 4) + 1).pngsave_buffer()
    assert pm.jpeg_frame(png) is None
    assert pm.jpeg_frame(b"") is None
    assert pm.jpeg_frame(b"\xff\xd8\x00\x01garbage-after-soi") is None


def test_thumbor_conf_is_python_with_no_cache(tmp_path: Path) -> None:
    root = tmp_path / "it's here"
    conf: dict[str, object] = {}
    exec(thumbor_conf(root), {}, conf)
    assert conf["FILE_LOADER_ROOT_PATH"] == str(root)
    assert conf["LOADER"] == "thumbor.loaders.file_loader"
    assert conf["RESULT_STORAGE"] is None
    assert conf["STORAGE"] == "thumbor.storages.no_storage"
    assert conf["QUALITY"] == 80 and conf["ALLOW_UNSAFE_URL"] is True


def test_nginx_lb_conf_balances_the_backends(tmp_path: Path) -> None:
    text = nginx_lb_conf(tmp_path, 18100, [18101, 18102])
    assert "listen 127.0.0.1:18100;" in text
    assert "least_conn; server 127.0.0.1:18101; server 127.0.0.1:18102; keepalive 64;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text and text.count("{") == text.count("}")
    nginx = shutil.which("nginx")
    if nginx is None:
        return
    (tmp_path / "tmp").mkdir()
    (tmp_path / "nginx.conf").write_text(text)
    out = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_place_sources_gives_each_user_the_same_bytes(tmp_path: Path) -> None:
    files = {pm.user_file(u): pm.user_photo(u) for u in range(8)}
    place_sources(tmp_path / "sources", files)
    for name, source in files.items():
        assert (tmp_path / "sources" / name).read_bytes() == source.read_bytes()


def row_run(row: str, index: int, value: float, hits: float = 0.0) -> pm.RowRun:
    curve = [(0.0, 10.0), (50.0, 100.0 + index), (99.0, 200.0), (100.0, 300.0)]
    n = int(value * 10)
    m = Measurement("wrk", 32, 10.0, n, statuses={"200": n}, curve=curve)
    edge = None if row == "thumbor" else EdgeCounters(hits={"memory": hits}, misses=value * 10)
    output = "progressive JPEG" if row == "thumbor" else "baseline JPEG"
    run = pm.RowRun(row, index, m, value, {"edge": 5.0, "origin": 0.5}, output, edge)
    if edge is not None:
        run.derivable = 0.25 + index / 100
    return run


def test_summary_takes_medians_and_per_run_ratios() -> None:
    runs = {
        "edge on": [row_run("edge on", i, v) for i, v in enumerate((300, 360, 320))],
        "edge off": [row_run("edge off", i, v) for i, v in enumerate((250, 300, 320))],
        "thumbor": [row_run("thumbor", i, v) for i, v in enumerate((150, 240, 160))],
    }
    s = pm.summarize(runs, {"edge on": "edge, on", "thumbor": "thumbor 7.8"})
    on = s["rows"]["edge on"]
    assert on["value"]["median"] == 320 and on["unit"] == "misses/s"
    assert on["vs_thumbor"]["runs"] == (2.0, 1.5, 2.0) and on["vs_thumbor"]["median"] == 2.0
    assert s["rows"]["thumbor"]["vs_thumbor"]["median"] == 1.0
    assert s["on_vs_off"]["runs"] == (1.2, 1.2, 1.0)
    assert on["p50_ms"]["median"] == 101.0 and on["cpu_ms_per_request"]["median"] == 5.5
    text = pm.table(s)
    assert "| edge, on | 320 (300-360) misses/s | 2.00 (1.50-2.00) |" in text
    assert "| edge off | 300 (250-320) misses/s |" in text  # no title given: the row's name
    assert "| thumbor 7.8 | 160 (150-240) req/s | 1.00 (1.00-1.00) |" in text
    assert "progressive JPEG |" in text and "baseline JPEG |" in text
    assert "avatar_from_larger on / off: 1.20 (1.00-1.20)" in text
    assert "a size asked earlier in the run (so a master): 26 (25-27) %" in text


def test_summary_without_thumbor_has_no_ratio() -> None:
    runs = {"edge on": [row_run("edge on", 0, 300)], "edge off": [], "thumbor": []}
    s = pm.summarize(runs, {})
    assert list(s["rows"]) == ["edge on"]
    assert "| edge on | 300 misses/s | - |" in pm.table(s)
    assert "on / off" not in pm.table(s)


def test_notes_flag_a_capped_mix_hits_and_a_busy_box() -> None:
    clean = row_run("edge on", 0, 300, hits=32)  # 3000 requests; the repeats still in flight
    assert pm.run_notes(clean, paths=3000) == []
    dirty = row_run("edge on", 0, 300, hits=33)
    dirty.noise = {"other_pct": 25.0}
    notes = pm.run_notes(dirty, paths=5000)
    assert "stopped after 3000 of 5000 requests (the cap)" in notes
    assert "33 cache hits during the run" in notes
    assert "other work used 25% of the box" in notes
    blind = pm.RowRun("edge off", 0, clean.measurement, 1.0, {}, "baseline JPEG")
    assert "no /metrics from the edge: misses unknown" in pm.run_notes(blind, paths=3000)


def test_cpu_per_request_adds_up_the_thumbor_processes() -> None:
    cpu = pm.trees_ms({"thumbor-1": 4.0, "thumbor-2": 6.0, "nginx": 0.5}, requests=1000)
    assert cpu == {"thumbor": 10.0, "nginx": 0.5}
    assert math.isnan(pm.trees_ms({"edge": 1.0}, requests=0)["edge"])


def test_cli_defaults_and_refusals(tmp_path: Path) -> None:
    args = parse_args(["avatars", "--duration", "8", "--set", "edge.cache.memory_bytes=0"])
    assert args.users == 0 and args.runs == 1 and args.connections == 32
    assert args.thumbor_processes == total_transform_processes(0, 1)
    assert args.overrides == {"edge.cache.memory_bytes": 0}
    for bad in (["zipf"], ["avatars", "--runs", "0"], ["avatars", "--set", "x=1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    args = parse_args(["avatars", "--thumbor", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert args.thumbor_found is False


def test_results_json_is_strict(tmp_path: Path) -> None:
    args = parse_args(["avatars", "--duration", "2", "--out", str(tmp_path)])
    bench = PeerBench(args, Driver("builtin", 4, Progress()), tmp_path)
    assert bench.users == pm.mix_users(2.0) and len(bench.pairs) == bench.users * 5
    runs = {"edge on": [row_run("edge on", 0, 300)], "edge off": [], "thumbor": []}
    summary = pm.summarize(runs, {})
    path = write_results(args, bench, summary, runs, "python -m benchmarks.peers avatars")
    assert path == tmp_path / "peers-avatars.json"
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert data["settings"]["users"] == bench.users and data["settings"]["thumbor"] is None
    assert data["runs"][0]["value"] == 300 and data["runs"][0]["edge_metrics"]["misses"] == 3000
