"""The project's copy of the specification's test vectors (``tests/vectors``): complete,
readable without ``../shared``, and identical to the specification's when it is beside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vectors import SHARED_VECTORS_DIR, VECTORS_DIR, load_vector, vector_differences

#: Every file the tests read; each must be in the project itself.
READ_BY_THE_TESTS = ("signing.json", "serial_frames.json")


@pytest.mark.parametrize("name", READ_BY_THE_TESTS)
def test_the_vectors_the_tests_read_are_in_the_project(name: str) -> None:
    path = VECTORS_DIR / name
    assert path.is_file(), f"{path} is missing"
    assert SHARED_VECTORS_DIR not in path.parents
    assert load_vector(name) == json.loads(path.read_bytes())


def test_the_copies_are_identical_to_the_specification() -> None:
    if not SHARED_VECTORS_DIR.is_dir():
        pytest.skip(
            f"no specification checkout beside this one ({SHARED_VECTORS_DIR} does not "
            "exist): nothing to compare tests/vectors with"
        )
    assert any(p.is_file() for p in SHARED_VECTORS_DIR.iterdir()), (
        f"{SHARED_VECTORS_DIR} holds no vector file"
    )
    problems = vector_differences(SHARED_VECTORS_DIR, VECTORS_DIR)
    assert not problems, (
        "tests/vectors is not an exact copy of the specification's vectors "
        "(cp ../shared/spec/vectors/* tests/vectors/):\n" + "\n".join(problems)
    )


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, content in files.items():
        (root / name).write_bytes(content)
    return root


def test_identical_folders_have_no_differences(tmp_path: Path) -> None:
    files = {"a.json": b'{"a":1}\n', "b.json": '{"\u673a":2}'.encode()}
    assert vector_differences(_folder(tmp_path / "s", files), _folder(tmp_path / "c", files)) == []


@pytest.mark.parametrize(
    ("copy", "problem"),
    [
        ({"a.json": b'{"a":1}\n'}, "b.json: in"),
        ({"a.json": b'{"a":1}', "b.json": b"[2]"}, "a.json: "),
        ({"a.json": b'{"a":1}\n', "b.json": b"[2] "}, "b.json: "),
        ({"a.json": b'{"a":1}\n', "b.json": b"[2]", "c.json": b"{}"}, "c.json: in"),
    ],
    ids=["missing", "a-trailing-newline-lost", "one-byte-more", "extra"],
)
def test_each_difference_is_found(tmp_path: Path, copy: dict[str, bytes], problem: str) -> None:
    spec = _folder(tmp_path / "spec", {"a.json": b'{"a":1}\n', "b.json": b"[2]"})
    problems = vector_differences(spec, _folder(tmp_path / "copy", copy))
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_missing_copy_folder_misses_every_file(tmp_path: Path) -> None:
    spec = _folder(tmp_path / "spec", {"a.json": b"{}", "b.json": b"[]"})
    assert len(vector_differences(spec, tmp_path / "nowhere")) == 2
