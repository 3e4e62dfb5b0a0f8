"""A run writes only under its --out directory, never loses a trained epoch to a failing disk, and
refuses files that are not regular files (issue 19): path rules, the lock, stale temporaries, the
overwrite guard, free space, ENOSPC and read-only disks through a fault-injecting writer."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.diagnostics import DiagnosticError
from wengert.train import checkpoint, loop, rundir
from wengert.train.loop import Trainer

SMALL = """
seed 1
input x: f64[batch, 2]
input y: f64[batch, 2]
logits = Dense(tanh(Dense(x, 8)), 2)
loss   = mean(softmax_crossentropy(logits, y))
data tr = moons(examples=64, noise=0.1, seed=3) |> onehot(y, 2)
train {
  data = tr
  minimize = loss
  optimizer = adam(lr=0.05)
  epochs = 3
  batch = 16
CHECKPOINT}
"""


def program(tmp_path: Path, checkpoint_line: str = "") -> Path:
    path = tmp_path / "small.dl"
    path.write_text(SMALL.replace("CHECKPOINT", f"  checkpoint = {checkpoint_line}\n" if checkpoint_line else ""))
    return path


def trainer(path: Path, out: Path, **kw) -> Trainer:
    return Trainer(wengert.load(path), None, {}, out_dir=out, **kw)


def diagnostic(e: DiagnosticError) -> str:
    return "\n".join(d.render() for d in e.diagnostics)


# ----------------------------------------------------------------------------- paths
@pytest.mark.parametrize("written", ['"../victim.npz"', '"sub/../../victim.npz"', 'ABSOLUTE'])
def test_a_checkpoint_path_leaving_the_run_is_an_error_at_its_line(tmp_path, written):
    victim = tmp_path / "victim.npz"
    victim.write_text("precious")
    path = program(tmp_path, written.replace("ABSOLUTE", f'"{victim}"'))
    with pytest.raises(DiagnosticError) as e:
        trainer(path, tmp_path / "out").run()
    text = diagnostic(e.value)
    assert f"{path}:14:16: error: the checkpoint path" in text and "--allow-path" in text
    assert "checkpoint = " in text and "^" in text  # the source line and a caret
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_allow_path_lets_a_checkpoint_out_of_the_run(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    path = program(tmp_path, f'"{elsewhere / "ck.npz"}"')
    trainer(path, tmp_path / "out", allow_paths=(elsewhere,)).run()
    assert checkpoint.read_meta(elsewhere / "ck.npz")["epoch"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".lock", "history.csv", "params.npz"]


def test_a_relative_checkpoint_path_is_inside_out(tmp_path):
    path = program(tmp_path, '"ck/run.npz"')
    trainer(path, tmp_path / "out").run()
    assert (tmp_path / "out" / "ck" / "run.npz").is_file()
    assert not (tmp_path / "ck").exists()


def test_a_symlink_in_out_cannot_point_the_checkpoint_elsewhere(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "out" / "link")
    with pytest.raises(DiagnosticError, match="leaves the run's directory"):
        trainer(program(tmp_path, '"link/ck.npz"'), tmp_path / "out").run()


def test_cli_path_rule_exit_status_2(tmp_path):
    path = program(tmp_path, '"../../x/victim.txt"')
    result = CliRunner().invoke(main, ["train", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ":14:16: error: the checkpoint path \"../../x/victim.txt\" leaves" in result.output
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_data_and_imports_that_are_not_regular_files_are_refused(tmp_path, kind):
    special = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "directory":
        special.mkdir()
    else:
        special = Path("/dev/zero")
    expected = {"fifo": "is a FIFO (named pipe), not a regular file", "directory": "is a directory, not a regular file",
                "device": "is a character device, not a regular file"}[kind]
    sources = [f'input x: f64[batch, 2]\ny = sum(x)\ndata d = idx(x="{special}")\n',
               f'input x: f64[batch, 2]\ny = sum(x)\ndata d = npz("{special}")\n',
               f'input x: f64[batch, 2]\ny = sum(x)\ndata d = csv("{special}", x=0..2)\n']
    for source in sources:  # a FIFO would block forever and /dev/zero never end: each must fail at once
        prog = wengert.compile(source, path=str(tmp_path / "p.dl"))
        from wengert.train import data
        with pytest.raises(DiagnosticError) as e:
            data.load(prog.module.data["d"])
        assert expected in diagnostic(e.value)
    imported = tmp_path / "imports.dl"
    imported.write_text(f'import "{special}"\nx = 1\n')
    result = CliRunner().invoke(main, ["check", str(imported)])
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output


def test_inputs_from_special_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "f.npy")
    path = tmp_path / "p.dl"
    path.write_text("input x: f64[2]\ny = sum(x)\n")
    result = CliRunner().invoke(main, ["run", str(path), "--eval", "y", "-i", f"x={tmp_path / 'f.npy'}"])
    assert result.exit_code == 2 and "is a FIFO (named pipe), not a regular file" in result.output


def test_an_import_with_a_surrogate_is_a_diagnostic(tmp_path):
    path = tmp_path / "p.dl"
    path.write_text('import "\\ud800"\nx = 1\n')
    result = subprocess.run([sys.executable, "-m", "wengert.cli", "check", str(path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_diagnostics_never_quote_a_file_that_is_not_a_program(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password = hunter2 (\n")
    result = CliRunner().invoke(main, ["check", str(secret)])
    assert result.exit_code == 2 and "hunter2" not in result.output and f"{secret}:" in result.output
    importer = tmp_path / "p.dl"
    importer.write_text(f'import "{secret}"\nx = 1\n')
    result = CliRunner().invoke(main, ["check", str(importer)])
    assert result.exit_code == 2 and "hunter2" not in result.output
    shown = tmp_path / "bad.dl"
    shown.write_text("x = (1 +\n")
    assert "x = (1 +" in CliRunner().invoke(main, ["check", str(shown)]).output  # a program's lines are shown


# ----------------------------------------------------------------------------- the directory
def test_a_lock_keeps_a_second_run_out(tmp_path):
    out = tmp_path / "out"
    held = rundir.RunDir(out, out / "checkpoint.npz")
    held.open()
    try:
        with pytest.raises(DiagnosticError, match=rf"another training run \(pid {os.getpid()}\) is writing to"):
            trainer(program(tmp_path), out).run()
    finally:
        held.close()
    trainer(program(tmp_path), out).run()  # released: the next run goes ahead


def test_a_killed_runs_lock_does_not_block(tmp_path):
    out = tmp_path / "out"
    code = (f"from wengert.train import rundir; from pathlib import Path; import os; "
            f"r = rundir.RunDir(Path({str(out)!r}), None); r.open(); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert (out / ".lock").exists()
    trainer(program(tmp_path), out).run()


def test_stale_temporaries_are_removed_at_the_next_start(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / "checkpoint.npz.k2j3h4.tmp", out / "params.npz.a8b9.tmp", out / "history.csv.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    (out / "notes.tmp").write_text("the user's own file")
    seen = []
    Trainer(wengert.load(program(tmp_path)), None, {}, out_dir=out,
            report=lambda event, **info: seen.append(info["path"]) if event == "removed_stale" else None).run()
    assert not any(p.exists() for p in stale) and sorted(seen) == sorted(map(str, stale))
    assert (out / "notes.tmp").read_text() == "the user's own file"


def test_a_fresh_run_does_not_replace_an_earlier_checkpoint(tmp_path):
    path, out = program(tmp_path), tmp_path / "out"
    trainer(path, out).run()
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(DiagnosticError, match="holds a checkpoint of epoch 3; continue it with --resume"):
        Trainer(wengert.load(path), None, {"epochs": 1}, out_dir=out).run()
    assert (out / "checkpoint.npz").read_bytes() == before
    Trainer(wengert.load(path), None, {"epochs": 1}, out_dir=out, overwrite=True).run()
    assert checkpoint.read_meta(out / "checkpoint.npz")["epoch"] == 1
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(path), "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output and "Traceback" not in result.output
    assert runner.invoke(main, ["train", str(path), "--out", str(out), "--restart"]).exit_code == 0


def test_no_room_for_a_checkpoint_is_refused_before_the_first_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda d: shutil._ntuple_diskusage(10 ** 9, 10 ** 9 - 100, 100))
    events = []
    with pytest.raises(DiagnosticError, match=r"not enough free space in .*one checkpoint needs .* 100 bytes is free"):
        Trainer(wengert.load(program(tmp_path)), None, {}, out_dir=tmp_path / "out",
                report=lambda event, **info: events.append(event)).run()
    assert "epoch" not in events and "start" not in events


# ----------------------------------------------------------------------------- failing writes
def fault_injecting_writes(monkeypatch, directory: Path, error: int, after_saves: int = 0) -> None:
    """Make writes of files in `directory` fail with `error` (after `after_saves` good checkpoints): the
    file is opened through os.fdopen by checkpoint.save, so its writes are wrapped there."""
    real_fdopen = os.fdopen
    count = {"saves": 0}

    class Faulty:
        def __init__(self, f):
            self.f = f
            self.written = 0

        def write(self, data):
            if self.written > 100:  # fail part way, as a disk filling up does
                raise OSError(error, os.strerror(error))
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if target.parent == directory.resolve() and target.name.startswith("checkpoint.npz"):
            count["saves"] += 1
            if count["saves"] > after_saves:
                return Faulty(f)
        return f
    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_failing_disk_keeps_the_previous_checkpoint_and_rescues_the_epoch(tmp_path, monkeypatch, error):
    path, out = program(tmp_path), tmp_path / "out"
    rescue_dir = tmp_path / "rescue"
    rescue_dir.mkdir()
    monkeypatch.setenv(rundir.RESCUE_ENV, str(rescue_dir))
    monkeypatch.setattr(loop, "SAVE_EVERY", 0.0)  # a checkpoint after every epoch
    fault_injecting_writes(monkeypatch, out, error, after_saves=1)
    with pytest.raises(DiagnosticError) as e:
        trainer(path, out).run()
    text = diagnostic(e.value)
    rescued = next(rescue_dir.iterdir())
    assert f"cannot write {out / 'checkpoint.npz'} ({os.strerror(error)})" in text
    assert "still holds a checkpoint of epoch 1" in text and f"saved to {rescued}" in text and "--resume" in text
    assert checkpoint.read_meta(out / "checkpoint.npz")["epoch"] == 1  # the previous one, intact
    assert not list(out.glob("*.tmp"))
    monkeypatch.undo()
    # the rescued state is epoch 2: moved into place, a resume finishes as an uninterrupted run does
    shutil.move(rescued, out / "checkpoint.npz")
    resumed = trainer(path, out)
    resumed.run(resume_from=out / "checkpoint.npz")
    whole = trainer(path, tmp_path / "whole")
    whole.run()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    for k, v in whole.prog.params.items():
        assert np.array_equal(v, resumed.prog.params[k])


def test_a_failing_disk_through_the_cli_is_a_diagnostic(tmp_path, monkeypatch):
    path, out = program(tmp_path), tmp_path / "out"
    monkeypatch.setenv(rundir.RESCUE_ENV, str(tmp_path))
    fault_injecting_writes(monkeypatch, out, errno.ENOSPC)
    result = CliRunner().invoke(main, ["train", str(path), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "No space left on device" in result.output and "no earlier checkpoint was written" in result.output
    assert list(tmp_path.glob("wengert-rescue-small-epoch1-*.npz"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_out_is_refused_before_training(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(DiagnosticError, match="cannot write to the run's directory"):
            trainer(program(tmp_path), out).run()
    finally:
        out.chmod(0o755)


def test_a_read_only_out_is_refused_before_training_even_for_root(tmp_path, monkeypatch):
    """As root, chmod does not stop writes: a read-only file system is simulated at the probe."""
    import tempfile
    real = tempfile.mkstemp
    out = tmp_path / "out"

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    events = []
    with pytest.raises(DiagnosticError, match="cannot write to the run's directory .*Read-only file system"):
        Trainer(wengert.load(program(tmp_path)), None, {}, out_dir=out,
                report=lambda event, **info: events.append(event)).run()
    assert "start" not in events


def test_eval_of_a_program_with_an_outside_checkpoint_path_still_works(tmp_path):
    path = program(tmp_path, '"/somewhere/else/ck.npz"')
    trainer(path, None).evaluate(Trainer(wengert.load(path), None, {}).datasets["tr"])  # no write, no error
    with pytest.raises(DiagnosticError, match="is absolute"):
        trainer(path, tmp_path / "out").run()
