"""Running a sweep: check the experiment, skip the points already in ``results.jsonl``, print a
compute estimate, run the rest on a local process pool (default), in this process
(``workers=0``) or on Ray (``ray=True``), and append each row as it finishes.

Only this process writes ``results.jsonl`` (workers return rows), under an exclusive lock on the
output directory, so a row is appended at most once per run; and a point is submitted only if its
key has no valid row, so no run ever duplicates one. Killed at any moment, a rerun loses at most
the points in flight (their finished stages are kept under ``work/``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterator

from hwsim.sweep.experiment import Experiment, ExperimentError, Point, load_experiment
from hwsim.sweep.store import OutputLock, ResultStore, SweepError, atomic_write_json, log, sweep_temporaries

RESULTS_FILE, ERRORS_FILE, EXPERIMENT_FILE, WORK_DIR = "results.jsonl", "errors.jsonl", "experiment.json", "work"


def _die_with_parent(parent_pid: int) -> None:
    """A pool worker whose sweep process is killed (even by SIGKILL) dies with it (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


def _worker_init(parent_pid: int) -> None:
    _die_with_parent(parent_pid)


class PointFailure:
    """A point's exception and its traceback text, as the executors report it."""

    def __init__(self, err: BaseException, tb: str):
        self.err, self.tb = err, tb

    def __str__(self) -> str:
        msg = str(self.err).strip()
        return f"{type(self.err).__name__}: {msg.splitlines()[0] if msg else ''}"


def _call(point: Point, work: str, threads: int) -> dict:
    from hwsim.sweep.point import run_point

    return run_point(point.config, point.model_dir, work, threads)


Outcome = Iterator[tuple[Point, dict | PointFailure]]


def _inline(points: list[Point], work: str, threads: int) -> Outcome:
    for p in points:
        try:
            yield p, _call(p, work, threads)
        except Exception as err:  # noqa: BLE001 - recorded in errors.jsonl; the sweep goes on
            yield p, PointFailure(err, traceback.format_exc())


def _pool(points: list[Point], work: str, threads: int, workers: int) -> Outcome:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process with torch's thread pools
    ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        pending = {ex.submit(_call, p, work, threads): p for p in points}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                p = pending.pop(fut)
                err = fut.exception()
                if err is not None:
                    yield p, PointFailure(err, "".join(traceback.format_exception(err)))
                else:
                    yield p, fut.result()
    finally:  # also when the caller stops early: drop the queued points rather than wait for them
        ex.shutdown(wait=True, cancel_futures=True)


def _ray(points: list[Point], work: str, threads: int, workers: int) -> Outcome:
    try:
        import ray
    except ImportError as err:
        raise SweepError(f"--ray needs Ray: pip install 'hwsim[ray]' ({err})") from None
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")  # a running cluster; else a local one of `workers` CPUs
        kwargs = {} if address else {"num_cpus": max(1, workers) * threads, "include_dashboard": False}
        ray.init(address=address, log_to_driver=False, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(_call)
        pending = {remote.remote(p, work, threads): p for p in points}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                p = pending.pop(ref)
                try:
                    yield p, ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a RayTaskError wraps the point's exception
                    yield p, PointFailure(err, str(err))
    finally:
        if started:
            ray.shutdown()


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def estimate(exp: Experiment, done: list[dict], todo: int, workers: int) -> str:
    """points x seconds per point: measured on this experiment's finished rows, else configured."""
    measured = [r["seconds"]["total"] for r in done if r.get("seconds")]
    if measured:
        per, how = sum(measured) / len(measured), f"mean of {len(measured)} finished"
    elif exp.seconds_per_point:
        per, how = float(exp.seconds_per_point), "seconds_per_point of the experiment"
    else:
        return (f"sweep {exp.name}: {len(exp.points)} points (grid of {exp.grid_size}), {len(done)} done, "
                f"{todo} to run; no estimate yet (set seconds_per_point, or it is measured once points finish)")
    cpu = per * todo
    wall = cpu / max(1, min(workers, todo)) if todo else 0.0
    return (f"sweep {exp.name}: {len(exp.points)} points (grid of {exp.grid_size}), {len(done)} done, {todo} to run; "
            f"~{_fmt_seconds(per)} per point ({how}) -> ~{_fmt_seconds(cpu)} of compute, "
            f"~{_fmt_seconds(wall)} on {max(1, workers)} worker(s)")


def run_sweep(experiment_path: str | Path, out_dir: str | Path, workers: int = 1, ray: bool = False,
              threads: int | None = None, dry_run: bool = False, progress: bool = True) -> list[dict]:
    """Run (or resume) the sweep of ``experiment_path`` into ``out_dir``; the experiment's rows, in
    the order of its points. ``workers=0`` runs the points in this process. Raises
    :class:`ExperimentError` for a bad file (before any work) and :class:`SweepError` if points
    failed (after all the others ran; their errors are in ``errors.jsonl``)."""
    exp = load_experiment(experiment_path)
    if workers < 0:
        raise ExperimentError(f"workers must be >= 0, got {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    out = Path(out_dir)
    with OutputLock(out):
        store = ResultStore(out / RESULTS_FILE)
        if store.torn_bytes or store.bad_lines:
            log(f"sweep: {out / RESULTS_FILE}: dropped an interrupted last row ({store.torn_bytes} bytes) and "
                f"{store.bad_lines} damaged line(s); their points run again")
        work = out / WORK_DIR
        sweep_temporaries(out)
        done = [store.rows[p.key] for p in exp.points if p.key in store.rows]
        todo = [p for p in exp.points if p.key not in store.rows]
        print(estimate(exp, done, len(todo), workers), flush=True)
        if dry_run:
            for p in exp.points:
                print(f"  {p.key}  {'done' if p.key in store.rows else 'todo'}  {p.label()}")
            return done
        from hwsim.provenance import provenance

        atomic_write_json(out / EXPERIMENT_FILE, {**exp.summary(), "provenance": provenance()})
        errors = ResultStore(out / ERRORS_FILE)
        failed = []
        started = time.time()
        if todo:
            work.mkdir(parents=True, exist_ok=True)
            if ray:
                outcomes = _ray(todo, str(work), threads, workers)
            elif workers == 0:
                outcomes = _inline(todo, str(work), threads)
            else:
                outcomes = _pool(todo, str(work), threads, workers)
            from tqdm import tqdm

            with tqdm(total=len(todo), desc=exp.name, unit="point", file=sys.stderr, disable=not progress,
                      dynamic_ncols=True) as bar:
                for point, result in outcomes:
                    if isinstance(result, PointFailure):
                        failed.append((point, result))
                        errors.append({"key": point.key, "config": point.config, "label": point.label(),
                                       "error": str(result), "traceback": result.tb, "provenance": provenance()})
                        bar.write(f"sweep: FAILED {point.label()}: {result}")
                    else:
                        store.append(result)
                        bar.set_postfix_str(f"fid {result['fid']:.1f}", refresh=False)
                    bar.update(1)
        rows = [store.rows[p.key] for p in exp.points if p.key in store.rows]
        cpu = sum(r["seconds"]["total"] for r in rows)
        print(f"sweep {exp.name}: {len(rows)}/{len(exp.points)} points in {out / RESULTS_FILE} "
              f"({time.time() - started:.0f} s this run; {cpu / 3600:.3f} CPU-hours in the rows)", flush=True)
    if failed:
        point, failure = failed[0]
        raise SweepError(f"{len(failed)} of {len(todo)} points failed (see {out / ERRORS_FILE}); first: "
                         f"{point.label()}: {failure}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``hwsim sweep EXPERIMENT.yaml --out DIR [--ray] [--workers N]`` (also ``python -m hwsim.sweep``)."""
    parser = argparse.ArgumentParser(prog="hwsim sweep", description="Run or resume a sweep (docs/sweeps.md).")
    parser.add_argument("experiment", type=Path, help="experiment YAML")
    parser.add_argument("--out", type=Path, required=True, help="output directory (results.jsonl; rerun to resume)")
    parser.add_argument("--workers", type=int, default=1, help="parallel points (0: in this process); default 1")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch/BLAS threads per point (default: cores / workers)")
    parser.add_argument("--ray", action="store_true", help="run the points on Ray (RAY_ADDRESS, or a local cluster)")
    parser.add_argument("--dry-run", action="store_true", help="check the file, print the estimate and the points")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        run_sweep(args.experiment, args.out, args.workers, args.ray, args.threads, args.dry_run, not args.no_progress)
    except (ExperimentError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
