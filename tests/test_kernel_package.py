"""What a built kernel embeds: the runtime package, subpackages included, and nothing else.

The script `make kernel` builds carries `competition/` as a zip. It must hold every module a kernel
can reach through imports (so nothing fails on Kaggle, where the kit is not installed), none of the
benchmarks, and not the demo's renderer or walkthrough; and unpacked on its own, away from this
checkout, every module in it must import.
"""

from __future__ import annotations

import ast
import base64
import io
import subprocess
import sys
import zipfile
from pathlib import Path

from competition.kaggle.kernel_build import KERNEL_LEAVES_OUT, PACKAGE_DIR, Kernel, left_out_of_kernels, render_script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_imports import import_graph  # noqa: E402 (the import reader of the layering test)


def embedded_package(script: str) -> zipfile.ZipFile:
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(script).body
              if isinstance(node, ast.Assign) and node.targets[0].id == "PACKAGE_ZIP"}
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(values["PACKAGE_ZIP"])))


def built_package() -> zipfile.ZipFile:
    kernel = Kernel("package check kernel", {"kind": "train", "competition": "c", "dataset": "demo",
                                             "experiments": []}, enable_gpu=True)
    return embedded_package(render_script(kernel))


def module_of(member: str) -> str:
    parts = Path(member).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_kernel_holds_the_package_recursively_but_not_the_dev_tools():
    members = set(built_package().namelist())
    on_disk = {f"competition/{path.relative_to(PACKAGE_DIR).as_posix()}" for path in PACKAGE_DIR.rglob("*.py")
               if "__pycache__" not in path.parts}
    left_out = {member for member in on_disk if left_out_of_kernels(member.removeprefix("competition/"))}
    for item in KERNEL_LEAVES_OUT:  # each still names something: a rename would silently start shipping it
        assert any(left_out_of_kernels(m.removeprefix("competition/")) and m.removeprefix("competition/").startswith(
            item) for m in on_disk), item
    assert {"competition/demo_run.py", "competition/datasets/demo_synth.py", "competition/app/server.py"} <= left_out
    assert members == on_disk - left_out
    assert {"competition/modeling/train.py", "competition/datasets/registry.py", "competition/kaggle/kernel_run.py",
            "competition/features/cache.py"} <= members
    assert not any(member.startswith("benchmarks/") or "bench" in Path(member).name for member in members)


def test_every_module_a_kernel_can_reach_is_embedded():
    graph = import_graph()
    reached, todo = set(), ["competition.kaggle.kernel_run"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    embedded = {module_of(member) for member in built_package().namelist()}
    # The one module reached but not embedded: the demo's renderer, imported only by the registry's demo
    # fetcher (`make data DATASET=demo`), which kernels never call; they read mounted data.
    assert reached - embedded == {"competition.datasets.demo_synth"}
    assert "competition.demo_run" not in reached and not any(m.startswith("competition.app") for m in reached)


def test_the_embedded_package_imports_on_its_own(tmp_path):
    built_package().extractall(tmp_path / "package")
    modules = sorted(module_of(member) for member in built_package().namelist())
    probe = ("import importlib, sys\n"
             "for name in sys.argv[2:]:\n"
             "    module = importlib.import_module(name)\n"
             "    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)\n"
             "print(len(sys.argv) - 2)\n")
    package = str(tmp_path / "package")
    done = subprocess.run([sys.executable, "-c", probe, package, *modules], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": package, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(len(modules))
