from __future__ import annotations

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hlcli.runs import tensorboard as tb

from .integration_runs import make_run


def _read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_and_groups_read_back_as_the_document_says(tmp_path):
    runs = [make_run(6, seed=s, group_by="top") for s in (1, 2)]
    docs = [r.document() for r in runs]
    for step, run in enumerate(runs):
        tb.log_run(run, tmp_path / "tb", step=step * 1000, worst=0)
    acc = _read(tmp_path / "tb")
    tags = set(acc.Tags()["scalars"])
    metrics = docs[0]["summary"]["metrics"]
    assert {f"hlcli/{m}" for m in metrics} <= tags
    assert {f"hlcli/Set5/{m}" for m in metrics} | {f"hlcli/Urban/{m}" for m in metrics} <= tags
    for m in metrics:
        events = acc.Scalars(f"hlcli/{m}")
        assert [e.step for e in events] == [0, 1000]
        assert [e.value for e in events] == [float(np.float32(d["summary"]["metrics"][m]["mean"])) for d in docs]
    e = acc.Scalars("hlcli/Set5/l1")[1]
    assert e.value == float(np.float32(docs[1]["summary"]["groups"]["Set5"]["metrics"]["l1"]["mean"]))


def test_worst_pairs_are_panels_in_rank_order(tmp_path):
    run = make_run(5, seed=3, extra=("psnr",))
    rng = np.random.default_rng(0)
    px = {p.key: (rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
          for p in run.pairs}
    run.images = px.get
    tb.log_run(run, tmp_path, step=7, worst=3, sort="psnr")
    acc = _read(tmp_path)
    assert acc.Tags()["images"] == ["hlcli/worst/1", "hlcli/worst/2", "hlcli/worst/3"]
    img = acc.Images("hlcli/worst/1")[0]
    assert (img.step, img.width, img.height) == (7, 3 * 30 + 8, 20)
    worst = sorted(run.pairs, key=lambda p: p.extra["psnr"])[:3]  # PSNR: lower is worse
    assert [p.key for p in tb.worst_pairs(run.pairs, 3, "psnr")] == [p.key for p in worst]
    text = acc.Tensors("hlcli/worst/text_summary")[0]
    assert worst[0].key.encode() in text.tensor_proto.string_val[0]


def test_run_to_tensorboard_takes_a_writer_or_a_folder(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = make_run(3, seed=4)
    writer = SummaryWriter(str(tmp_path / "w"))
    run.to_tensorboard(writer, step=5, worst=0)  # flushed, left open for the caller's own logging
    writer.add_scalar("mine/loss", 1.0, 5)
    writer.close()
    assert {"hlcli/hybrid", "mine/loss"} <= set(_read(tmp_path / "w").Tags()["scalars"])
    run.to_tensorboard(tmp_path / "d", step=6, worst=0)
    assert _read(tmp_path / "d").Scalars("hlcli/l1")[0].step == 6


def test_without_tensorboard_it_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    import pytest

    from hlcli.errors import HlcliEnvironmentError

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(HlcliEnvironmentError, match=r"pip install 'hlcli\[tensorboard\]'") as err:
        make_run(2).to_tensorboard(tmp_path)
    assert err.value.exit_code == 3


def test_set_metrics_and_infinite_means_as_scalars():
    summary = {"metrics": {"l1": {"mean": 0.5}, "psnr": {"mean": None}},
               "sets": {"samples": 4, "dims": 64, "small": True, "note": "small", "fid": 3.0, "kid": None},
               "groups": {"A": {"metrics": {"l1": {"mean": 0.25}}, "sets": {"samples": 2, "fid": 4.0}}}}
    assert tb.scalars(summary) == {"hlcli/l1": 0.5, "hlcli/fid": 3.0, "hlcli/A/l1": 0.25, "hlcli/A/fid": 4.0}
