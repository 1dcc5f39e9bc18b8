"""Writes of rendered files go through folder descriptors: a folder swapped for a symlink
between the plan and the write, or during it, fails the write in one line and never sends
it (or its temp file) outside the stack folder."""

import os
import shutil
from pathlib import Path

import pytest

from reconciler import files
from reconciler.errors import ReconcileError
from reconciler.files import desired_files, write
from reconciler.network import NetworkDecision
from reconciler.stack import load

NETWORK = NetworkDecision(
    mode="internal", source="test", registry="harbor.test/aihpc", registry_source="test", alias_prefix="localhost"
)


def _planned(tmp_path: Path, dest: str):
    """A stack writing ``dest`` from a one-line source, planned; and an empty folder outside it."""
    root, outside = tmp_path / "stack", tmp_path / "outside"
    (root / "conf/deeper").mkdir(parents=True)
    outside.mkdir()
    (root / "a.txt").write_text("secret content\n")
    (root / "stack.toml").write_text(f'[stack]\nname = "s"\n\n[[files]]\nsrc = "a.txt"\ndest = "{dest}"\n')
    (spec,) = desired_files(load(root), NETWORK)
    return spec, root, outside


def _everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _swap_for_symlink(folder: Path, target: Path) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("dest, swapped", [("conf/out.txt", "conf"), ("conf/deeper/out.txt", "conf")])
def test_a_folder_swapped_for_a_symlink_during_the_write_fails_in_one_line_and_writes_nothing_outside(
    tmp_path, monkeypatch, dest, swapped
):
    spec, root, outside = _planned(tmp_path, dest)
    monkeypatch.setattr(files, "_opened", lambda spec: _swap_for_symlink(root / swapped, outside))
    with pytest.raises(ReconcileError) as caught:
        write(spec)
    assert _everything(outside) == []  # neither the file nor its temp
    assert f"cannot write {dest}: its folder was removed or replaced during the write" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("dest, swapped", [("conf/out.txt", "conf"), ("conf/deeper/out.txt", "conf/deeper")])
def test_a_folder_swapped_for_a_symlink_after_the_plan_is_refused_by_name(tmp_path, dest, swapped):
    spec, root, outside = _planned(tmp_path, dest)
    _swap_for_symlink(root / swapped, outside)
    with pytest.raises(ReconcileError) as caught:
        write(spec)
    assert _everything(outside) == []
    assert str(caught.value) == (
        f"cannot write {dest}: {swapped} is a symlink now; put the folder back, then plan again"
    )


def test_a_folder_replaced_by_a_file_is_refused(tmp_path):
    spec, root, _ = _planned(tmp_path, "conf/out.txt")
    shutil.rmtree(root / "conf")
    (root / "conf").write_text("not a folder")
    with pytest.raises(ReconcileError, match=r"cannot write conf/out\.txt: conf is not a folder now"):
        write(spec)


def test_a_destination_that_became_a_symlink_is_refused_and_its_target_kept(tmp_path):
    spec, root, outside = _planned(tmp_path, "conf/out.txt")
    (outside / "victim").write_text("keep me\n")
    (root / "conf/out.txt").symlink_to(outside / "victim")
    with pytest.raises(ReconcileError, match=r"cannot write conf/out\.txt: it is a symlink now"):
        write(spec)
    assert (outside / "victim").read_text() == "keep me\n"
    assert _everything(root / "conf") == ["deeper", "out.txt"]  # no temp file left


def test_missing_folders_are_created_and_no_temp_file_stays(tmp_path):
    spec, root, _ = _planned(tmp_path, "new/deep/out.txt")
    write(spec)
    assert (root / "new/deep/out.txt").read_text() == "secret content\n"
    assert _everything(root / "new") == ["deep", "deep/out.txt"]


def test_a_failed_rename_removes_the_temp_file(tmp_path, monkeypatch):
    spec, root, _ = _planned(tmp_path, "conf/out.txt")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(ReconcileError, match=r"cannot write conf/out\.txt: Permission denied"):
        write(spec)
    assert _everything(root / "conf") == ["deeper"]
