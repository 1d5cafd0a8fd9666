"""Smoke test of the report (fastconv bench): every case runs and the outputs are written."""
import json

from fastconv.cli import bench


def test_report_runs_every_case_and_writes_its_outputs(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_START}\nold\n{bench.README_END}\nrest\n")
    runner = bench.Runner(threads=2, budget=0.0, naive=True)
    runner.gemm([(6, 25, 784)])
    runner.conv(["LeNet-5 conv1 64x1x32x32 -> 6 @5x5"])
    runner.thread_scaling(["LeNet-5 conv1 64x1x32x32 -> 6 @5x5"])
    runner.pooling()
    runner.lenet()
    runner.sobel()
    groups = {row["group"] for row in runner.rows}
    assert groups == {"GEMM", "conv forward", "conv backward", "threads", "pool forward",
                      "pool backward", "LeNet-5", "edge filter"}
    meta = dict(date="2026-01-01", cpu="cpu", threads=2, version="v", simd="s", numpy="n",
                torch="t", ceiling=runner.ceiling)
    table = bench.markdown(runner.rows, meta)
    assert table.count("\n| ") == len(runner.rows) + 1   # header + one line per row
    bench.update_readme(readme, table)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
    bench.chart(runner.rows, tmp_path / "chart.png")
    json.dumps(runner.rows)


def test_contenders_take_turns():
    calls = []
    times = bench.median_times([lambda: calls.append("a"), lambda: calls.append("b")],
                               budget=0.0, turns=3, warm_s=0.0)
    # each turn: one untimed call, then (budget 0) one timed call, of each contender in turn
    assert calls == ["a", "a", "b", "b"] * 3
    assert len(times) == 2 and all(t >= 0 for t in times)
