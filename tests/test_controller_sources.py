"""Controllers from anywhere (issue 19): every reference form, plugins, and spec files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _user_files import MY_CTL, write_user_files

from closedloop._config import ConfigError
from closedloop.controllers import OpenLoop, PIDParams
from closedloop.controllers.registry import read_spec_file
from closedloop.controllers.sources import (
    ENTRY_POINT_GROUP,
    ObjectRef,
    SpecFile,
    registered_names,
    resolve_controller,
    resolve_controllers,
    zoo_policies,
)
from closedloop.evaluation import run_episode, run_grid

ENV = "closedloop/ECAPClinic-Test-v0"
SHORT = {"episode_s": 14.0}


@pytest.fixture()
def user_dir(tmp_path, monkeypatch):
    """A scratch folder with a controller file and a spec file, as the working directory."""
    monkeypatch.chdir(tmp_path)
    return write_user_files(tmp_path)


def test_registered_names_resolve_to_themselves_and_zoo_to_factories():
    assert resolve_controller("open-loop") == ("open-loop", "open-loop")
    for name, folder in zoo_policies().items():
        label, source = resolve_controller(name)
        assert label == name and source.source_id == f"zoo:{name}"
        assert resolve_controller(str(folder))[1].source_id == f"zoo:{name}"


def test_spec_file_builds_its_controller_with_validated_params(user_dir):
    label, source = resolve_controller("./my-pid.toml")
    assert label == "my-pid" and isinstance(source, SpecFile)
    ctl = source()
    assert ctl.params.kp_ma_per_uv == 0.01
    assert ctl.params == PIDParams(kp_ma_per_uv=0.01)  # the type's defaults, then the file's
    (user_dir / "bad.toml").write_text('controller = "pid"\n[params]\nkp_ma_per_uv = -1.0\n')
    with pytest.raises(ConfigError, match="kp_ma_per_uv"):
        resolve_controller("bad.toml")


def test_spec_file_may_name_a_class_relative_to_itself(user_dir):
    sub = user_dir / "specs"
    sub.mkdir()
    (sub / "mine.toml").write_text('name = "mine"\ncontroller = "../my_ctl.py:MyController"\n')
    (sub / "kw.toml").write_text('controller = "../my_ctl.py:Hold"\n[params]\nx = 1\n')
    assert type(read_spec_file(sub / "mine.toml").build()).__name__ == "MyController"
    with pytest.raises(ConfigError, match="kw"):  # Hold() takes no keyword x
        read_spec_file(sub / "kw.toml").build()


def test_file_and_module_references(user_dir, monkeypatch):
    label, source = resolve_controller("./my_ctl.py:MyController")
    assert label == "MyController" and isinstance(source, ObjectRef)
    assert source.ref == f"{user_dir / 'my_ctl.py'}:MyController"  # absolute: workers find it
    assert resolve_controller("my_ctl.py:Hold")[0] == "hold"  # its name attribute
    assert resolve_controller("closedloop.controllers:OpenLoop")[0] == OpenLoop.name
    monkeypatch.syspath_prepend(str(user_dir))
    assert resolve_controller("my_ctl:Hold")[1] == ObjectRef("my_ctl:Hold")
    assert resolve_controller("mine=my_ctl:Hold")[0] == "mine"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", "Registered names: .*open-loop"),
        ("./missing.toml", "no such spec file"),
        ("no_such_module_xyz:C", "cannot import module"),
        ("./my_ctl.py:Nope", "has no attribute 'Nope'"),
        ("./missing.py:C", "no such file"),
        ("collections:OrderedDict", "no predict"),  # builds, but is no controller
        ("closedloop.controllers:ControlContext", "no arguments"),
        (".", "holds no trained model"),
        ("", "non-empty"),
    ],
)
def test_bad_references_name_the_problem(user_dir, ref, message):
    with pytest.raises(ConfigError, match=message):
        resolve_controller(ref)


def test_labels_must_be_unique_and_all_expands_to_the_shipped_controllers(user_dir):
    names = list(resolve_controllers(["all"]))
    assert names[: len(names) - len(zoo_policies())] == sorted(
        names[: len(names) - len(zoo_policies())]
    )
    assert set(zoo_policies()) <= set(names)
    with pytest.raises(ConfigError, match="labelled 'open-loop'"):
        resolve_controllers(["open-loop", "open-loop=./my_ctl.py:Hold"])
    assert list(resolve_controllers(["pi", "pi"])) == ["pi"]


def test_plugin_entry_points_register_names(tmp_path, monkeypatch):
    pkg = tmp_path / "gsi_plugin.py"
    pkg.write_text(MY_CTL.replace("class MyController", "class Gsi"))
    dist = tmp_path / "gsi_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gsi-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ngsi = gsi_plugin:Gsi\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "gsi" in registered_names()
    label, source = resolve_controller("gsi")
    assert label == "gsi" and source == ObjectRef("gsi_plugin:Gsi")
    assert "gsi" not in resolve_controllers(["all"])  # plugins are named, not implied


def test_user_controllers_play_in_worker_processes_like_in_process(user_dir):
    ctl = {
        label: src
        for label, src in (
            resolve_controller("./my_ctl.py:MyController"),
            resolve_controller("./my-pid.toml"),
        )
    }
    rows = run_grid(ctl, [ENV], ["test-000"], [0], workers=2, progress=False, env_overrides=SHORT)
    direct = run_episode(ctl["MyController"](), ENV, "test-000", 0, SHORT)
    row = next(r for r in rows if r["controller"] == "MyController")
    assert row["mad_uv"] == direct.metrics["mad_uv"]
    assert np.isfinite(row["mad_uv"])
    hold = run_episode(resolve_controller("my_ctl.py:Hold")[1](), ENV, "test-000", 0, SHORT)
    assert np.ptp(hold.trajectory.current_ma) == 0.0  # no reset(context), played as it is


def test_training_run_folder_is_labelled_by_the_run(tmp_path):
    zoo = zoo_policies()
    if not zoo:
        pytest.skip("no zoo policy shipped")
    run = tmp_path / "ppo-run"
    shutil.copytree(next(iter(zoo.values())), run / "best")
    label, source = resolve_controller(str(run))
    assert label == "ppo-run" and source.source_id == f"trained:{run.resolve()}"
    assert resolve_controller(str(run / "best"))[0] == "ppo-run"
