"""The torchvision import fix: needed here (CPU torch), a no-op where _C.so loads.

Each case runs in a fresh interpreter: the fix acts once per process, before torchvision
is first imported.
"""

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def plain_import_fails() -> bool:
    r = run("import torchvision")
    if r.returncode:
        assert "torchvision::nms does not exist" in r.stderr, r.stderr
    return r.returncode != 0


def test_fix_branch_matches_the_environment():
    """Where a bare import fails (CPU torch), the schemas are defined and the import works."""
    r = run("""
        from abn._torchvision import import_torchvision, prepare
        branch = prepare()
        tv = import_torchvision()
        import torchvision.transforms.v2
        ds, T, grid = tv.datasets.CIFAR10, torchvision.transforms.v2.RandomCrop, tv.utils.make_grid
        print(branch)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("schemas" if plain_import_fails() else "native")


def test_no_op_when_the_extension_loads():
    """Simulate CUDA torch/Colab: _C.so loads, so nothing is defined by the fix."""
    r = run("""
        import torch
        loaded = []
        torch.ops.load_library = lambda path: loaded.append(path)
        from abn import _torchvision
        print(_torchvision.prepare(), _torchvision._fragment is None, loaded[0].endswith(".so"))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["native", "True", "True"]


def test_already_imported_torchvision_is_left_alone():
    r = run("""
        import sys, types
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        from abn import _torchvision
        print(_torchvision.prepare(), _torchvision._fragment is None)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["imported", "True"]
