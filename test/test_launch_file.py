"""launch/kdc.launch.py, read as source: launch_ros is not on PyPI, so the file cannot run here. Its
arguments are the README's, the node it starts is an installed command of this package, and the
files it names are installed with the package (setup.py install_data, what colcon installs)."""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kdc_ros.node import params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "kdc.launch.py"
TREE = ast.parse(LAUNCH.read_text())
PACKAGE = params.PACKAGE


def calls(name: str) -> list[ast.Call]:
    return [node for node in ast.walk(TREE) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == name]


def keyword(call: ast.Call, name: str):
    value = next(k.value for k in call.keywords if k.arg == name)
    return ast.literal_eval(value)


def readme_arguments() -> dict[str, str]:
    """{argument: default} of the README's launch argument table."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| Argument | Default | Meaning |")
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines[start + 2:] if line.startswith("|")]
    rows = rows[:next((i for i, r in enumerate(rows) if len(r) != 3), len(rows))]
    return {r[0].strip().strip("`"): r[1].strip() for r in rows}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The data files `setup.py install_data` installs, under a prefix of the test's own."""
    prefix = tmp_path_factory.mktemp("prefix")
    subprocess.run([sys.executable, "setup.py", "-q", "install_data", "-d", str(prefix)], cwd=ROOT, check=True,
                   capture_output=True, text=True, timeout=120)
    return prefix / "share" / PACKAGE


def test_arguments_are_the_readmes_and_override_real_parameters():
    declared = {ast.literal_eval(call.args[0]): call for call in calls("DeclareLaunchArgument")}
    documented = readme_arguments()
    assert set(declared) == set(documented)
    assert documented["rviz"] == "`false`" and keyword(declared["rviz"], "default_value") == "false"
    overridable = next(ast.literal_eval(node.value) for node in ast.walk(TREE) if isinstance(node, ast.Assign)
                       and getattr(node.targets[0], "id", None) == "OVERRIDABLE")
    assert set(overridable) <= set(declared) & set(params.SPECS), "an override must name a node parameter"


def test_the_node_it_starts_is_an_installed_command_of_this_package():
    (node,) = [call for call in calls("Node") if keyword(call, "package") == PACKAGE]
    executable = keyword(node, "executable")
    assert keyword(node, "name") == params.NODE_NAME
    entry = next(e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == executable)
    assert entry.dist.name == PACKAGE and callable(entry.load())
    # ros2 launch finds an executable under lib/<package>: where setup.cfg installs the commands.
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    assert setup_cfg["install"]["install_scripts"] == f"$base/lib/{PACKAGE}"


def test_the_files_it_names_are_installed(installed):
    named = [tuple(ast.literal_eval(arg) for arg in call.args[1:]) for call in calls("join")
             if getattr(call.args[0], "id", None) == "SHARE"]
    assert ("config", "kdc.yaml") in named and ("config", "kdc.rviz") in named
    for parts in named:
        assert installed.joinpath(*parts).is_file(), parts
    assert (installed / "launch" / LAUNCH.name).read_text() == LAUNCH.read_text()
    assert (installed / "config" / "kdc.yaml").read_text() == params.default_parameters_file().read_text()
