"""``discover oss://``: a job list from the simulated bucket; run imports it once; new objects only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipeline.joblist.naming import image_name, repair
from pipeline.joblist.validate import check_name
from tests.oss_helpers import add_objects, catalogue, object_line, oss_calls, write_objects
from tests.run_helpers import SimProcess, cli, import_requests, imported_counts, run_against

pytestmark = pytest.mark.timeout(180)


def discover(sim: SimProcess, source: str, out: Path, *extra: str) -> tuple[int, str]:
    result = cli("discover", source, "--oss-endpoint", sim.url, "--out", str(out), "--list-rate", "0",
                 *extra)
    return result.returncode, result.stderr


@pytest.mark.parametrize("count", [pytest.param(1000, marks=pytest.mark.long), 120])
def test_discover_emits_exactly_the_importable_objects_and_run_imports_each_once(tmp_path: Path,
                                                                               count: int) -> None:
    """Nested prefixes, non-qcow2 files, spaces, +, %, CJK, over-long names, a collision, an empty
    object: exactly the importable ones emitted with valid unique names; run imports each once; 100
    objects added: the next discover + run sends exactly those 100."""
    lines, good = catalogue("img-bkt", count)
    objects = write_objects(tmp_path / "objects.jsonl", lines)
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = discover(sim, "oss://img-bkt/images/", tmp_path / "jobs.csv")
        assert code == 1, err  # the collision and the empty object are reported
        with (tmp_path / "jobs.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {r["OSSObject"] for r in rows} == good
        names = [r["ImageName"] for r in rows]
        assert len(set(names)) == len(names)
        assert all(check_name(n) is None for n in names)
        assert "'images/dup/x y.qcow2', 'images/dup/x+y.qcow2'" in err
        assert "'images/odd/empty.qcow2' is empty" in err
        assert f"{len(good)} jobs written, 2 reported" in err
        assert oss_calls(sim.url)["Calls"]["ListObjectsV2"] == 1  # type: ignore[index]

        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "500",
                                "--concurrency", "32")
        assert code == 0, err
        assert imported_counts(sim.images()) == dict.fromkeys(names, 1)
        sent = import_requests(sim)
        assert sent == len(good)

        new = [object_line("img-bkt", f"images/new/disk-{i:03d}.qcow2") for i in range(100)]
        assert add_objects(sim.url, new) == 100
        code, err = discover(sim, "oss://img-bkt/images/", tmp_path / "jobs.csv")
        assert "102 jobs written" not in err
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "500",
                                "--concurrency", "32")
        assert code == 0, err
        assert import_requests(sim) - sent == 100
        new_names = {image_name("{parent}-{stem}", f"images/new/disk-{i:03d}.qcow2") for i in range(100)}
        assert set(imported_counts(sim.images())) == set(names) | new_names


def test_discover_formats_globs_and_template(tmp_path: Path) -> None:
    objects = write_objects(tmp_path / "objects.jsonl", [
        object_line("fmt-bkt", "a/one.qcow2"), object_line("fmt-bkt", "a/two.raw"),
        object_line("fmt-bkt", "a/skip-me.qcow2")])
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = discover(sim, "oss://fmt-bkt/a/", tmp_path / "out.jsonl", "--format", "jsonl",
                             "--include", "*.qcow2", "--include", "*.raw", "--exclude", "skip-*",
                             "--name", "disk-{stem}")
        assert code == 0, err
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        common = {"OSSRegion": "cn-beijing", "OSSBucket": "fmt-bkt"}
        assert rows == [{"ImageName": "disk-one", **common, "OSSObject": "a/one.qcow2"},
                        {"ImageName": "disk-two", **common, "OSSObject": "a/two.raw"}]
        code, err = discover(sim, "oss://fmt-bkt/a/", tmp_path / "out.json", "--format", "json")
        assert code == 0, err
        written = json.loads((tmp_path / "out.json").read_text())
        assert [r["ImageName"] for r in written] == ["a-one", "a-skip-me"]
        result = cli("discover", "oss://fmt-bkt/a/", "--oss-endpoint", sim.url, "--name", "{nope}")
        assert result.returncode == 2
        assert "{stem}" in result.stderr


def test_an_oss_source_whose_bucket_does_not_exist_is_exit_65_naming_it(tmp_path: Path) -> None:
    """discover, validate and run of oss://BUCKET/ when OSS answers NoSuchBucket: exit 65 (the
    source cannot be read, as for a missing job-list file), one line naming the source and the
    bucket, no traceback, no job list written and nothing sent. (It was exit 1 with OSS's error.)"""
    objects = write_objects(tmp_path / "objects.jsonl", [object_line("img-bkt", "images/a.qcow2")])
    with SimProcess("--oss-objects", str(objects)) as sim:
        for args in (("discover", "oss://no-such-bkt/images/", "--out", str(tmp_path / "jobs.csv")),
                     ("validate", "oss://no-such-bkt/images/"),
                     ("run", "oss://no-such-bkt/images/", "--endpoint", sim.url, "--journal",
                      str(tmp_path / "j.jsonl"))):
            result = cli(*args, "--oss-endpoint", sim.url, cwd=tmp_path)
            assert result.returncode == 65, (args[0], result.stderr)
            errors = [line for line in result.stderr.splitlines() if line.startswith("ens-migrate: error:")]
            assert len(errors) == 1, result.stderr
            assert errors[0].startswith("ens-migrate: error: oss://no-such-bkt/images/: bucket "
                                        "'no-such-bkt' does not exist (OSS NoSuchBucket"), errors[0]
            assert "Traceback" not in result.stderr
        assert import_requests(sim) == 0
    assert not (tmp_path / "jobs.csv").exists()


@pytest.mark.parametrize(("raw", "key", "expected"), [
    ("kubernetes 1.28-worker", "k", "kubernetes-1-28-worker"),
    ("9lives", "k", "img-9lives"),
    ("-x", "k", "img-x"),
    ("镜像 中文", "k", "镜像-中文"),
    ("a+b%c", "k", "a-b-c"),
    ("", "k", "img-8254c329"),
])
def test_repair_rule(raw: str, key: str, expected: str) -> None:
    assert repair(raw, key) == expected
    assert check_name(repair(raw, key)) is None


def test_long_names_are_cut_with_a_stable_hash_of_the_key() -> None:
    one, two = repair("x" * 300, "k1"), repair("x" * 300, "k2")
    assert len(one) == 128
    assert one != two
    assert one == repair("x" * 300, "k1")
