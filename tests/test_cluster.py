"""Folders, sweeps and videos on a local Ray cluster (2 workers on this machine): the same pixels as here."""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import pack_module
from PIL import Image

cli = pack_module("dream_core.cli")
cluster = pack_module("dream_core.cluster")
imageio = pack_module("dream_core.imageio")

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--octaves", "2", "--iterations", "3", "--step", "0.03", "--precision", "fp32"]


@contextlib.contextmanager
def threads(count: int):
    """The single-machine reference computed with as many CPU threads as each worker: on a CPU a dream's pixels
    depend on the thread count (oneDNN splits its sums by thread; the ascent then amplifies the rounding: up to
    0.1 after 6 steps between 1 and 2 threads here), so runs are compared at equal threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


VIDEO_FAST = [*FAST, "--next-iterations", "2", "--flow", "ilk"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """20 different small pictures: crops of the bundled photos, turned and mirrored."""
    path = tmp_path_factory.mktemp("pictures")
    photos = [imageio.load_image(ROOT / "samples" / name) for name in ("astronaut.png", "coffee.jpg")]
    for index in range(20):
        photo = photos[index % 2]
        side = 96
        top, left = (index * 37) % (photo.shape[-2] - side), (index * 53) % (photo.shape[-1] - side)
        crop = photo[..., top : top + side, left : left + side]
        crop = torch.rot90(crop, index % 4, dims=(-2, -1))
        if index % 3 == 0:
            crop = crop.flip(-1)
        imageio.save_image(crop[0], path / f"picture_{index:02d}.png")
    return path


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def single_machine(folder, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("single") / "out"
    with threads(1):
        assert cli.main(["dream", str(folder), "-o", str(out), *FAST]) == 0
    return _pixels(out)


@pytest.mark.slow
def test_a_folder_on_two_workers_gives_the_single_machine_pixels(ray_cluster, folder, single_machine, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["dream", str(folder), "-o", str(out), *FAST, "--ray", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "on the Ray cluster: 2 workers, 1 CPU thread each" in err and "images: 20/20 images  2 workers" in err
    dreamed = _pixels(out)
    assert len(dreamed) == 20 and dreamed.keys() == single_machine.keys()
    for name, picture in dreamed.items():
        assert np.array_equal(picture, single_machine[name]), name
    assert not (out / ".deepdream-job.json").exists()  # complete: nothing to go on from


@pytest.mark.slow
def test_a_worker_with_the_single_machines_threads_gives_its_pixels_in_bf16_too(ray_cluster, tmp_path):
    photo = tmp_path / "photo.png"
    imageio.save_image(
        F.interpolate(imageio.load_image(ROOT / "samples" / "astronaut.png"), size=(96, 96), mode="area")[0], photo
    )
    bf16 = [*FAST[:-1], "bf16"]
    assert cli.main(["dream", str(photo), "-o", str(tmp_path / "here.png"), *bf16]) == 0
    threads = str(torch.get_num_threads())
    assert (
        cli.main(
            [
                "dream",
                str(photo),
                "-o",
                str(tmp_path / "ray.png"),
                *bf16,
                "--ray",
                "--workers",
                "1",
                "--worker-threads",
                threads,
            ]
        )
        == 0
    )
    here, spread = (np.asarray(Image.open(tmp_path / name)) for name in ("here.png", "ray.png"))
    assert np.array_equal(here, spread)


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_nothing(ray_cluster, folder, single_machine, tmp_path, monkeypatch):
    seen = {}

    def kill_one_busy_worker(pool):  # the worker handed an image a moment ago dies in the middle of it
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 3:
            worker, seen["killed"] = pool.last
            seen["pool"] = pool
            pool.kill(worker)

    monkeypatch.setattr(cluster.Pool, "watch", staticmethod(kill_one_busy_worker))
    out = tmp_path / "out"
    assert cli.main(["dream", str(folder), "-o", str(out), *FAST, "--ray", "--workers", "2"]) == 0
    assert seen["pool"].replaced == 1  # its image went to a worker started in its place
    dreamed = _pixels(out)
    assert dreamed.keys() == single_machine.keys()
    assert all(np.array_equal(picture, single_machine[name]) for name, picture in dreamed.items())


@pytest.mark.slow
def test_a_bad_image_is_named_and_a_stopped_job_goes_on(
    ray_cluster, folder, single_machine, tmp_path, monkeypatch, capsys
):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for file in folder.glob("*.png"):
        (pictures / file.name).write_bytes(file.read_bytes())
    (pictures / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"

    def stop_after_five(pool):
        if len(list(out.glob("*.png"))) >= 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(cluster.Pool, "watch", staticmethod(stop_after_five))
    assert cli.main(["dream", str(pictures), "-o", str(out), *FAST, "--ray"]) == 130
    assert len(list(out.glob("*.png"))) >= 5  # (a worker may have written one more it had not yet reported)
    monkeypatch.setattr(cluster.Pool, "watch", None)
    capsys.readouterr()
    assert cli.main(["dream", str(pictures), "-o", str(out), *FAST, "--ray"]) == 1  # broken.png fails
    err = capsys.readouterr().err
    assert "going on:" in err and "images were finished by an earlier run" in err
    assert "1 of 21 images failed: broken.png" in err
    dreamed = _pixels(out)
    assert dreamed.keys() == single_machine.keys()
    assert all(np.array_equal(picture, single_machine[name]) for name, picture in dreamed.items())
    (pictures / "broken.png").unlink()  # the journal of the earlier runs still holds: only what is left runs
    assert cli.main(["dream", str(pictures), "-o", str(out), *FAST, "--ray"]) == 0
    assert "going on: 20 of 20 images" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_on_the_cluster_gives_the_same_sheet(ray_cluster, tmp_path):
    photo = ROOT / "samples" / "astronaut.png"
    small = tmp_path / "small.png"
    imageio.save_image(F.interpolate(imageio.load_image(photo), size=(96, 96), mode="area")[0], small)
    lines = ["--line", "blocks.3: 1", "--line", "blocks.6: 1", "--line", "blocks.3: 1, blocks.6: 1"]
    with threads(1):
        assert cli.main(["sweep", str(small), "-o", str(tmp_path / "here.png"), *FAST, *lines]) == 0
    assert cli.main(["sweep", str(small), "-o", str(tmp_path / "ray.png"), *FAST, *lines, "--ray"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "here.png")), np.asarray(Image.open(tmp_path / "ray.png")))


@pytest.mark.slow
def test_channel_pictures_on_the_cluster_are_the_single_machines(ray_cluster, tmp_path):
    """`channels --ray`: each worker grows a part of the set, each picture from its own noise in the whole set."""
    args = ["channels", "--channels", "0-4", "--size", "64", "--steps", "6", "--precision", "fp32"]
    with threads(1):
        assert cli.main([*args, "-o", str(tmp_path / "here.png"), "--pictures", str(tmp_path / "here")]) == 0
    ray_args = ["-o", str(tmp_path / "ray.png"), "--pictures", str(tmp_path / "ray"), "--ray", "--workers", "2"]
    assert cli.main([*args, *ray_args]) == 0
    here, there = _pixels(tmp_path / "here"), _pixels(tmp_path / "ray")
    assert sorted(here) == sorted(there) and len(here) == 5
    assert all(np.array_equal(here[name], there[name]) for name in here)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "here.png")), np.asarray(Image.open(tmp_path / "ray.png")))


def _three_shot_clip(path: Path, per_shot: int = 4, side: int = 96) -> Path:
    """Three shots (pans over the photo, the coffee, the photo's lower part upside down) with a sine tone: an MP4
    at 12 fps."""
    import av

    astronaut, coffee = (imageio.load_image(ROOT / "samples" / name) for name in ("astronaut.png", "coffee.jpg"))
    pictures = [astronaut, coffee, torch.rot90(astronaut[..., 200:, 100:], 2, dims=(-2, -1))]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = side, side, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        for picture in pictures:
            wide = F.interpolate(picture, size=(side, side + 3 * per_shot), mode="area")
            for t in range(per_shot):
                rgb = (wide[0, :, :, 3 * t : 3 * t + side].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        seconds = 3 * per_shot / 12
        samples = np.sin(2 * math.pi * 440 * np.arange(int(44100 * seconds)) / 44100).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.rate = 44100
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


@pytest.mark.slow
def test_a_three_shot_clip_on_the_cluster_gives_the_single_machine_frames(ray_cluster, tmp_path, capsys, monkeypatch):
    import av

    clip = _three_shot_clip(tmp_path / "clip.mp4")
    with threads(1):
        assert cli.main(["video", str(clip), "-o", str(tmp_path / "here"), *VIDEO_FAST]) == 0

    killed = []

    def kill_once_mid_shot(pool):  # a worker dies in the middle of a shot: the shot is dreamed again elsewhere
        if not killed:
            killed.append(pool)
            pool.kill(pool.last[0])

    monkeypatch.setattr(cluster.Pool, "watch", staticmethod(kill_once_mid_shot))
    assert cli.main(["video", str(clip), "-o", str(tmp_path / "ray"), *VIDEO_FAST, "--ray"]) == 0
    assert "3 shots in 12 frames" in capsys.readouterr().err and killed[0].replaced == 1
    here, spread = _pixels(tmp_path / "here"), _pixels(tmp_path / "ray")
    assert len(here) == 12 and here.keys() == spread.keys()
    assert all(np.array_equal(spread[name], here[name]) for name in here)

    def stop_after_a_shot(pool):
        if list((tmp_path / ".again.work").glob("shot_*.done")):
            raise KeyboardInterrupt

    monkeypatch.setattr(cluster.Pool, "watch", staticmethod(stop_after_a_shot))
    again = ["video", str(clip), "-o", str(tmp_path / "again"), *VIDEO_FAST, "--ray"]
    assert cli.main(again) == 130 and not (tmp_path / "again").exists()
    monkeypatch.setattr(cluster.Pool, "watch", None)
    capsys.readouterr()
    assert cli.main([*again, "--workers", "1"]) == 0  # goes on with the shots left, on fewer workers
    assert "finished by an earlier run" in capsys.readouterr().err
    resumed = _pixels(tmp_path / "again")
    assert resumed.keys() == here.keys() and all(np.array_equal(resumed[name], here[name]) for name in here)
    out = tmp_path / "dreamed.mp4"
    assert cli.main(["video", str(clip), "-o", str(out), *VIDEO_FAST, "--ray"]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 12 and container.streams.audio
        assert sum(1 for _ in container.decode(video=0)) == 12


@pytest.mark.slow
def test_a_scheduled_clip_on_the_cluster_gives_the_single_machine_frames(ray_cluster, tmp_path):
    """Each worker dreams its shot with the schedule read at the clip's frame index, not the shot's."""
    clip = _three_shot_clip(tmp_path / "clip.mp4")
    scheduled = [*VIDEO_FAST, "--schedule", "step: 0=0, 11=0.04"]
    with threads(1):
        assert cli.main(["video", str(clip), "-o", str(tmp_path / "here"), *scheduled]) == 0
    assert cli.main(["video", str(clip), "-o", str(tmp_path / "ray"), *scheduled, "--ray"]) == 0
    here, spread = _pixels(tmp_path / "here"), _pixels(tmp_path / "ray")
    assert len(here) == 12 and here.keys() == spread.keys()
    assert all(np.array_equal(spread[name], here[name]) for name in here)


def test_workers_the_cluster_has_no_room_for_are_refused_not_waited_for(ray_cluster, tmp_path, capsys):
    photo = ROOT / "samples" / "astronaut.png"
    assert (
        cli.main(
            [
                "dream",
                str(photo),
                "-o",
                str(tmp_path / "out.png"),
                *FAST,
                "--ray",
                "--workers",
                "2",
                "--worker-threads",
                "2",
            ]
        )
        == 2
    )
    assert "need 4 CPUs; the cluster has 2" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_without_ray_the_flag_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    photo = ROOT / "samples" / "astronaut.png"
    assert cli.main(["dream", str(photo), "-o", str(tmp_path / "out.png"), *FAST, "--ray"]) == 2
    assert 'pip install "deepdream-nodes[ray]"' in capsys.readouterr().err
    assert cli.main(["dream", str(photo), "-o", str(tmp_path / "out.png"), *FAST, "--workers", "2"]) == 2
    assert "only matter with --ray" in capsys.readouterr().err
    assert cli.main(["dream", str(photo), "-o", str(tmp_path / "out.png"), *FAST]) == 0


@pytest.mark.slow
def test_a_worker_writes_where_it_sees_the_drivers_folder_and_else_sends_the_pixels(tmp_path):
    """Through the outbox on a shared folder, or back to the driver: the same file either way."""
    photo = F.interpolate(imageio.load_image(ROOT / "samples" / "astronaut.png"), size=(96, 96), mode="area")
    job = (
        pack_module("dream_core.parser")
        .parse(["dream", "x.png", "-o", str(tmp_path / "y.png"), *FAST])
        .arguments["job"]
    )
    with threads(torch.get_num_threads()):  # a worker sets its process's threads: this one's are put back
        worker = cluster.Worker(job, 1)
        outbox = cluster.Outbox(tmp_path / "shared")
        assert worker.dream_image(photo[0].numpy(), str(tmp_path / "shared" / "a.png"), outbox) is None
        elsewhere = cluster.Outbox(tmp_path / "other")
        elsewhere.token = "not what the file says"  # as a worker on a machine that does not share the folder
        sent = worker.dream_image(photo[0].numpy(), str(tmp_path / "other" / "b.png"), elsewhere)
    assert sent is not None and not (tmp_path / "other" / "b.png").exists()
    imageio.save_pixels(sent, tmp_path / "b.png")
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "shared" / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    )
    (tmp_path / "shared" / f".a{pack_module('dream_core.outputs').PARTIAL}12345-x.png").write_bytes(b"half")
    outbox.close([12345])  # what a dead worker left half-written goes with the token
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["a.png"]
