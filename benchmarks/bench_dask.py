"""fastconv.dask at scale: a Sobel magnitude from one zarr store to another beside
dask-image's, on the threaded scheduler and on a local cluster of 1 and 2 worker processes,
its peak memory, the same copy without a filter (the storage's floor), batch inference of
LeNet-5 digits on the cluster beside in-memory predict, and how the tasks of the threaded
scheduler share the cores.

    pytest benchmarks/bench_dask.py --benchmark-only -s     # timings (a 16,384^2 image)
    pytest benchmarks/bench_dask.py --benchmark-disable     # smoke run (a 1,024^2 image)

FASTCONV_BENCH_DASK_SIDE and FASTCONV_BENCH_DASK_CHUNK set the image's side and the chunks'
rows x columns (default 16,384 and 1024x2048 when timed: 1 GiB of float32 in chunks of
8 MiB). Both stores are uncompressed, and every output chunk is written
(OUTPUT_STORE): to_zarr's defaults would compress the output with zstd and compare each
chunk with the fill value before writing it, work that does not shrink a Sobel magnitude
of noise and costs every contender the same time. FASTCONV_BENCH_DASK_DIGITS sets the number of
digits (default 200,000).
dask-image's Sobel magnitude is two ``ndfilters.sobel`` and ``hypot``; fastconv's is
``fastconv.dask.sobel``, both in the stores' chunks.
"""
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastconv
from conftest import THREADS

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")
import fastconv.dask as fd                               # noqa: E402


@pytest.fixture(scope="module")
def sizes(request):
    timed = not request.config.getoption("benchmark_disable")
    side = int(os.environ.get("FASTCONV_BENCH_DASK_SIDE", 16384 if timed else 1024))
    text = os.environ.get("FASTCONV_BENCH_DASK_CHUNK", "1024x2048" if timed else "128x256")
    chunk = tuple(int(n) for n in text.split("x"))
    digits = int(os.environ.get("FASTCONV_BENCH_DASK_DIGITS", 200_000 if timed else 4_000))
    return side, chunk, digits


@pytest.fixture(scope="module")
def stores(tmp_path_factory, sizes):
    """(input store, output store): a random float32 image, written band by band."""
    side, chunk, _ = sizes
    folder = tmp_path_factory.mktemp("stores")
    source = zarr.create_array(str(folder / "in.zarr"), shape=(side, side),
                               chunks=chunk, dtype="f4", compressors=None)
    rng = np.random.default_rng(0)
    for top in range(0, side, chunk[0]):
        source[top:top + chunk[0]] = rng.random((min(chunk[0], side - top), side),
                                                dtype=np.float32)
    return str(folder / "in.zarr"), str(folder / "out.zarr")


# to_zarr's settings of the output store, for every contender
OUTPUT_STORE = dict(overwrite=True, compressors=None, config={"write_empty_chunks": True})


def sobel_magnitude(contender, image):
    if contender == "fastconv":
        return fd.sobel(image)
    from dask_image import ndfilters
    return da.hypot(ndfilters.sobel(image, axis=0), ndfilters.sobel(image, axis=1))


def record(benchmark, sizes, **extra):
    side, chunk, _ = sizes
    benchmark.extra_info.update(side=side, chunk="x".join(map(str, chunk)), threads=THREADS,
                                **extra)
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["Mpixel_per_s"] = side * side / 1e6 / stats.stats.median


PEAK_MEMORY = textwrap.dedent(f"""
    import resource, sys
    import dask, dask.array as da
    import fastconv, fastconv.dask as fd
    fastconv.set_num_threads(int(sys.argv[3]))
    with dask.config.set(num_workers=int(sys.argv[3])):
        fd.sobel(da.from_zarr(sys.argv[1])).to_zarr(sys.argv[2], **{OUTPUT_STORE!r})
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_sobel_store_to_store_peak_memory(benchmark, stores, sizes):
    """The peak resident memory of a fresh process running fastconv's Sobel store to
    store on the threaded scheduler (Python, NumPy and Dask included)."""
    source, target = stores
    peak = {}

    def run():
        out = subprocess.run([sys.executable, "-c", PEAK_MEMORY, source, target, str(THREADS)],
                             capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(target))
        peak["MiB"] = int(out.stdout.split()[-1]) / 1024
    benchmark.group = "Sobel magnitude, zarr to zarr, peak memory"   # first: nothing else runs
    benchmark.pedantic(run, rounds=1, iterations=1)
    record(benchmark, sizes, peak_rss_MiB=round(peak["MiB"], 1))
    print(f"\npeak resident memory: {peak['MiB']:.0f} MiB")


def turns(benchmark, calls, rounds=3, timed_by_call=False):
    """Time the calls taking turns, round after round (each sees the same background), as
    one benchmark; returns {name: median seconds} and records each median and range.
    timed_by_call: each call returns the seconds of its timed part."""
    times = {name: [] for name in calls}

    def run():
        for _ in range(rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                seconds = call()
                times[name].append(seconds if timed_by_call
                                   else time.perf_counter() - start)
    benchmark.pedantic(run, rounds=1, iterations=1)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in times.items():
        benchmark.extra_info[f"{name} s"] = [round(min(t), 3), round(medians[name], 3),
                                             round(max(t), 3)]
    print(f"\n{benchmark.name}: " + ", ".join(
        f"{name} {medians[name]:.2f} s ({min(t):.2f}-{max(t):.2f})"
        for name, t in times.items()))
    return medians


def test_sobel_store_to_store_threads(benchmark, stores, sizes):
    """fastconv, dask-image and a plain copy (the storage's floor) taking turns on the
    threaded scheduler with THREADS threads."""
    pytest.importorskip("dask_image")
    source, target = stores

    def call(contender):
        def run():
            image = da.from_zarr(source)
            result = image if contender == "copy" else sobel_magnitude(contender, image)
            with dask.config.set(num_workers=THREADS):
                result.to_zarr(target, **OUTPUT_STORE)
        return run
    benchmark.group = "Sobel magnitude, zarr to zarr, threads"
    medians = turns(benchmark, {c: call(c) for c in ("fastconv", "dask-image", "copy")})
    record(benchmark, sizes, vs_dask_image=round(medians["dask-image"] / medians["fastconv"], 2),
           copy_vs_dask_image=round(medians["dask-image"] / medians["copy"], 2))


# dask.distributed's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which also
# freezes glibc's mmap threshold at 128 KiB: every array above 128 KiB, and any heap top
# above 64 KiB, goes back to the kernel when freed, so the next one costs page faults, and
# fastconv's kernels ran 1.5-2.5x slower in such workers here. Both variables, set in the
# environment the cluster starts in, reach the workers (README, Scaling out).
WORKER_ENVIRONMENT = {"MALLOC_TRIM_THRESHOLD_": str(64 << 20),
                      "MALLOC_MMAP_THRESHOLD_": str(64 << 20)}


@contextlib.contextmanager
def local_cluster(workers):
    """A Client of a LocalCluster of single-threaded worker processes on 127.0.0.1, started
    with WORKER_ENVIRONMENT."""
    before = {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)
    try:
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None,
                                      host="127.0.0.1") as cluster, \
                distributed.Client(cluster) as client:
            yield client
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_sobel_store_to_store_cluster(benchmark, stores, sizes):
    """fastconv's Sobel and a plain copy on a LocalCluster of 1 and of 2 single-threaded
    worker processes, taking turns: each turn starts its cluster (untimed), times the
    write, and closes the cluster, so both sizes meet the same machine."""
    source, target = stores

    def on_cluster(workers, contender):
        def run():
            with local_cluster(workers):
                image = da.from_zarr(source)
                result = image if contender == "copy" else sobel_magnitude(contender, image)
                start = time.perf_counter()
                result.to_zarr(target, **OUTPUT_STORE)
                return time.perf_counter() - start
        return run
    benchmark.group = "Sobel magnitude, zarr to zarr, cluster"
    calls = {f"{contender}, {workers} worker(s)": on_cluster(workers, contender)
             for workers in (1, 2) for contender in ("fastconv", "copy")}
    medians = turns(benchmark, calls, timed_by_call=True)
    record(benchmark, sizes, fastconv_2_over_1=round(
        medians["fastconv, 1 worker(s)"] / medians["fastconv, 2 worker(s)"], 2))


@pytest.fixture(scope="module")
def digits(tmp_path_factory, sizes):
    """(model, images in memory, the same images in a zarr store chunked by 10,000)."""
    count = sizes[2]
    images = np.random.default_rng(1).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    path = str(tmp_path_factory.mktemp("digits") / "digits.zarr")
    store = zarr.create_array(path, shape=images.shape, chunks=(10_000, 28, 28),
                              dtype="u1", compressors=None)
    store[:] = images
    return fastconv.nn.LeNet5(seed=0), images, path


def test_lenet5_batch_inference(benchmark, digits):
    """LeNet-5 labels for every digit, taking turns, each alone on the machine: model.predict
    on THREADS threads, then fastconv.dask.predict on a LocalCluster of 2 single-threaded
    workers reading the store (started with WORKER_ENVIRONMENT and warmed up before its
    turn, closed after it: even idle, a cluster's processes wake often enough to slow
    OpenMP's teams)."""
    model, images, path = digits
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(THREADS)

    def on_cluster():
        with local_cluster(2):
            fd.predict(model, da.from_zarr(path)[:20_000]).compute()    # warm-up
            start = time.perf_counter()
            fd.predict(model, da.from_zarr(path)).compute()
            return time.perf_counter() - start

    def in_memory():
        start = time.perf_counter()
        model.predict(images)
        return time.perf_counter() - start
    benchmark.group = "LeNet-5 batch inference"
    medians = turns(benchmark, {"in memory": in_memory, "cluster of 2 workers": on_cluster},
                    timed_by_call=True)
    fastconv.set_num_threads(before)
    benchmark.extra_info.update(images=len(images), threads=THREADS, cluster_vs_in_memory=round(
        medians["in memory"] / medians["cluster of 2 workers"], 2))


class TaskTimes(concurrent.futures.ThreadPoolExecutor):
    """A thread pool for the threaded scheduler that records the wall time of each task in
    the thread that runs it, by key without the token (the scheduler's callbacks run in
    its own thread, so their times would include the wait for a free thread)."""

    def __init__(self, threads):
        super().__init__(threads)
        self.times = {}

    def submit(self, fn, tasks):
        def timed():
            start = time.perf_counter()
            result = fn(tasks)
            key = tasks[0][0]                   # one task per call (dask's chunksize 1)
            if isinstance(key, tuple):
                name = key[0].rsplit("-", 1)[0]
                self.times[(name,) + key[1:]] = time.perf_counter() - start
            return result
        return super().submit(timed)


@pytest.mark.parametrize("threads", [None, THREADS], ids=["its share", "all threads"])
def test_threaded_scheduler_tasks_share_the_cores(benchmark, threads):
    """A Gaussian blur of 64 chunks of 1024^2 on the threaded scheduler with THREADS
    threads, fastconv on THREADS threads: each task on its share of the cores (the
    default), or each on all of them (oversubscribed). Taking turns with the same graph
    run one task at a time on one thread, it records CPU time / (wall time x cores) and
    each chunk's time against the same chunk alone (medians over the rounds)."""
    image = da.from_array(np.random.default_rng(2).random((8192, 8192), dtype=np.float32),
                          chunks=1024).persist(scheduler="sync")
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(THREADS)
    use, chunk_times = {}, {}

    def compute(workers, task_threads):
        def run():
            pool = TaskTimes(workers)
            blur = fd.gaussian(image, 2.0, threads=task_threads)
            wall, cpu = time.perf_counter(), time.process_time()
            with dask.config.set(pool=pool, num_workers=workers):
                blur.compute(scheduler="threads")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            pool.shutdown()
            use.setdefault(workers, []).append(cpu / (wall * workers))
            for key, seconds in pool.times.items():
                if key[0] == "fastconv-gaussian":
                    chunk_times.setdefault(workers, {}).setdefault(key, []).append(seconds)
        return run
    benchmark.group = "threaded scheduler: tasks on the cores"
    turns(benchmark, {"alone, one at a time": compute(1, 1),
                      f"{THREADS} at a time": compute(THREADS, threads)})
    fastconv.set_num_threads(before)
    alone, together = (chunk_times[1], chunk_times[THREADS])
    ratios = np.array([np.median(together[k]) / np.median(alone[k]) for k in alone])
    use = float(np.median(use[THREADS]))
    benchmark.extra_info.update(cpu_over_wall_x_cores=round(use, 3), threads=THREADS,
                                chunk_over_alone_median=round(float(np.median(ratios)), 2),
                                chunk_over_alone_p90=round(float(np.percentile(ratios, 90)), 2),
                                chunk_over_alone_max=round(float(ratios.max()), 2))
    print(f"{benchmark.name}: CPU / (wall x cores) {use:.2f}; a chunk's time over its time "
          f"alone on 1 thread: median {np.median(ratios):.2f}, 90th percentile "
          f"{np.percentile(ratios, 90):.2f}, slowest {ratios.max():.2f}")


def test_two_threads_in_cache_floor(benchmark):
    """The machine's own floor for the test above: a 9x9 filter of a 256^2 plane (it stays
    in each core's cache) in a loop on one thread, alone and on THREADS threads at once,
    taking turns. A task on a busy machine runs this much slower than alone whatever
    fastconv does."""
    plane = np.random.default_rng(3).random((256, 256), dtype=np.float32)
    kernel = np.random.default_rng(4).random((9, 9), dtype=np.float32)
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(1)

    def loop():
        for _ in range(200):
            fastconv.filters.filter2d(plane, kernel)

    def together():
        threads = [threading.Thread(target=loop) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    benchmark.group = "threaded scheduler: tasks on the cores"
    medians = turns(benchmark, {"alone": loop, f"{THREADS} at once": together}, rounds=5)
    fastconv.set_num_threads(before)
    benchmark.extra_info["together_over_alone"] = round(
        medians[f"{THREADS} at once"] / medians["alone"], 2)
