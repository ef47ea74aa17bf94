"""Reading and writing results; aggregating them (abn.stats) on JSON files written by a
real (tiny) sweep."""

import json
import statistics

import pytest

from abn.results import ResultError, atomic_path, load_results, provenance_label, write_json
from abn.stats import summary_table
from abn.sweep import sweep
from abn.train import TrainConfig


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    configs = [TrainConfig(model=m, seed=s, width=0.125, epochs=2, batch_size=64, train_subset=256,
                           val_size=128, test_subset=128, profile="quick")
               for s in (0, 1) for m in ("resnet_s", "resnet_dmb")]
    sweep(configs, out, out / "ckpt", progress=False)
    (out / "bench_cpu.json").write_text(json.dumps({"kind": "bench", "model": "resnet_s", "ratio": 1.0}))
    (out / "notes.json").write_text("[]")  # JSON that is no result: ignored
    return out


def test_loads_every_run_and_ignores_other_json(folder):
    runs = load_results(folder)
    assert sorted((r["model"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("resnet_s", "resnet_dmb") for s in (0, 1))
    assert all(r["file"].endswith("_quick.json") for r in runs)
    assert load_results(folder, profile="full") == []
    with pytest.raises(ResultError, match="bench_cpu.json lacks"):
        load_results(folder, kind="bench")


def test_summary_table_matches_the_files(folder):
    runs = load_results(folder)
    table = summary_table(runs)
    for model in ("resnet_s", "resnet_dmb"):
        accs = [r["final_test_acc"] for r in runs if r["model"] == model]
        best = [r["best_test_acc"] for r in runs if r["model"] == model]
        row = table.loc[model]
        assert row["n"] == 2
        assert row["final_test_mean"] == pytest.approx(statistics.mean(accs))
        assert row["final_test_std"] == pytest.approx(statistics.stdev(accs))
        assert row["best_test_mean"] == pytest.approx(statistics.mean(best))
        assert row["best_test_mean"] >= row["final_test_mean"]
    assert table.loc["resnet_dmb", "params"] > table.loc["resnet_s", "params"]


def test_provenance_label(folder):
    label = provenance_label(load_results(folder))
    assert label.startswith("precomputed on cpu") and "commit" in label
    assert provenance_label([]) == "no precomputed results"


def test_missing_folder_has_no_results(tmp_path):
    assert load_results(tmp_path / "missing") == []


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json({"kind": "train", "a": 1}, path)
    assert json.loads(path.read_text()) == {"kind": "train", "a": 1}
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"kind": "train", "a": 1}  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # and no temporary left


def test_broken_file_is_named(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ResultError, match="broken.json is not valid JSON"):
        load_results(tmp_path)
