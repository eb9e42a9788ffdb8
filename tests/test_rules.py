"""Row validation: defaults, ImportImage's rules, Job construction and duplicate names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.joblist.job import PARAMETERS, Job, encode_disk_mapping
from pipeline.joblist.names import NameIndex
from pipeline.joblist.readers import RawRow
from pipeline.joblist.rules import BUILTIN_RULES, ENUMERATED, JobRules, job_rules
from pipeline.joblist.validate import (
    REQUIRED,
    InvalidRow,
    Problem,
    check_name,
    check_row,
    iter_rows,
)

RULES = job_rules(load_config(None))
NO_DEFAULTS = JobRules({}, RULES.allowed)
GOOD = {"ImageName": "img-1", "OSSBucket": "bucket", "OSSObject": "a/b c.qcow2"}


def check(values: dict[str, object], rules: JobRules = RULES) -> Job | InvalidRow:
    return check_row(RawRow("jobs/catalog.csv", 17, values), rules)


def problems(values: dict[str, object], rules: JobRules = RULES) -> list[tuple[str, str]]:
    result = check(values, rules)
    assert isinstance(result, InvalidRow), result
    return [(p.field, p.message) for p in result.problems]


# --- ImageName -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "why"), [
    ("a", "'a' is 1 character long; use 2 to 128"),
    ("ab", None),
    ("a" * 128, None),
    ("a" * 129, f"'{'a' * 59}…' is 129 characters long; use 2 to 128"),
    ("镜像", None),
    ("\u4e00\u9fa5", None),
    ("镜像-centos7:v1_2", None),
    ("Ab9:_-", None),
    ("1abc", "'1abc' must start with a letter or a Chinese character"),
    ("_abc", "'_abc' must start with a letter or a Chinese character"),
    ("\u9fa6abc", None),
    ("\ua000abc", "'\ua000abc' must start with a letter or a Chinese character"),
    ("\u4dffabc", "'\u4dffabc' must start with a letter or a Chinese character"),
    ("éabc", "'éabc' must start with a letter or a Chinese character"),
    ("http://x", "'http://x' must not start with http:// or https://"),
    ("https://x", "'https://x' must not start with http:// or https://"),
    ("httpd-2", None),
    ("a.b", "'a.b' contains '.' at position 2; use only letters, Chinese characters, digits, ':', '_' "
     "and '-'"),
    ("ab c", "'ab c' contains ' ' at position 3; use only letters, Chinese characters, digits, ':', '_' "
     "and '-'"),
    ("ab/c", "'ab/c' contains '/' at position 3; use only letters, Chinese characters, digits, ':', '_' "
     "and '-'"),
])
def test_image_name_rule(name: str, why: str | None) -> None:
    """ImageName: 2-128 characters, letter or Chinese first, then letters/Chinese/digits/:_-."""
    assert check_name(name) == why


def test_bad_name_is_reported_with_location_field_and_fix() -> None:
    """A problem prints as FILE:LINE: Field: message, the message quoting the value."""
    result = check({**GOOD, "ImageName": "1abc"})
    assert isinstance(result, InvalidRow)
    assert [str(p) for p in result.problems] == [
        "jobs/catalog.csv:17: ImageName: '1abc' must start with a letter or a Chinese character"]
    assert (result.name, result.location) == ("1abc", "jobs/catalog.csv:17")


# --- enumerations, required fields, defaults -----------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [(f, v) for f in ENUMERATED for v in BUILTIN_RULES[f]])
def test_each_allowed_value_is_accepted(field: str, value: str) -> None:
    """Every value listed in [rules] is accepted for its field."""
    assert isinstance(check({**GOOD, field: value}), Job)


@pytest.mark.parametrize("field", ENUMERATED)
def test_value_outside_the_enumeration_is_refused(field: str) -> None:
    """A value not in the field's [rules] list is refused, listing the allowed ones."""
    assert problems({**GOOD, field: "Linux "}) == [
        (field, f"'Linux ' is not one of: {', '.join(BUILTIN_RULES[field])}")]


def test_enumeration_comes_from_the_rules() -> None:
    """Widening a [rules] list in the config accepts the new value with no code change."""
    wider = JobRules(RULES.defaults, {**RULES.allowed, "OSSRegion": ("cn-beijing", "cn-hangzhou")})
    assert isinstance(check({**GOOD, "OSSRegion": "cn-hangzhou"}, wider), Job)


@pytest.mark.parametrize("field", REQUIRED[1:])
def test_required_field_without_default_is_refused(field: str) -> None:
    """With no default configured, an empty required field is a problem saying how to fix it."""
    full = {**GOOD, **RULES.defaults}
    assert problems({**full, field: ""}, NO_DEFAULTS) == [
        (field, "is required; fill it in or set a default in the config's [defaults]")]


@pytest.mark.parametrize("value", [None, "", "   "])
def test_image_name_is_required(value: str | None) -> None:
    """A row without an ImageName (missing, empty or blank) is refused."""
    values = {**GOOD, "ImageName": value} if value is not None else {"OSSBucket": "b", "OSSObject": "o"}
    assert problems(values) == [("ImageName", "is required; fill it in")]


def test_defaults_fill_empty_fields_and_row_values_win() -> None:
    """An empty field takes the config default; a value in the row is kept."""
    job = check({**GOOD, "OSType": "windows", "ComputeType": "", "Architecture": " "})
    assert isinstance(job, Job)
    assert job.query() == {**GOOD, "OSType": "windows", "ComputeType": "ens_vm",
                           "Architecture": "x86_64", "ImageFormat": "qcow2"}


def test_job_params_follow_parameter_order_and_omit_empty_values() -> None:
    """A Job's params are in PARAMETERS order with empty fields left out."""
    job = check({"OSVersion": "", "LicenseType": "BYOL", **GOOD, "Platform": "centos"})
    assert isinstance(job, Job)
    assert [k for k, _ in job.params] == [p for p in PARAMETERS if p in {
        *GOOD, "LicenseType", "Platform", *RULES.defaults}]
    assert (job.source, job.line, job.name) == ("jobs/catalog.csv", 17, "img-1")


# --- value types (JSON) --------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    (7, "must be a string, not a number"),
    (7.9, "must be a string, not a number"),
    (True, "must be a string, not a boolean"),
    ({"a": 1}, "must be a string, not an object"),
    (["x"], "must be a string, not an array"),
])
def test_wrong_value_type_is_a_problem(value: object, message: str) -> None:
    """A JSON value that is not a string where one is expected is reported, not a crash."""
    assert problems({**GOOD, "OSVersion": value}) == [("OSVersion", message)]


def test_wrongly_typed_required_field_is_reported_once() -> None:
    """A required field of the wrong type gets its type problem, not also 'is required'."""
    assert problems({**GOOD, "ImageName": 12}) == [("ImageName", "must be a string, not a number")]


def test_unknown_field_is_a_problem() -> None:
    """A JSON key that is not an ImportImage parameter is refused with the valid names."""
    assert problems({**GOOD, "Colour": "blue"}) == [
        ("Colour", f"unknown field; valid fields: {', '.join(PARAMETERS)}")]


def test_row_defect_is_the_row_problem() -> None:
    """A row the reader could not split (ragged, not an object) is refused as a whole."""
    result = check_row(RawRow("a.csv", 3, {}, "3 cells but the header has 2 columns"), RULES)
    assert result == InvalidRow("a.csv", 3, None, (
        Problem("a.csv", 3, "row", "3 cells but the header has 2 columns"),))


# --- image source and DiskDeviceMapping ----------------------------------------------------------

@pytest.mark.parametrize(("values", "expected"), [
    ({"ImageName": "img-1", "OSSBucket": "b"},
     [("OSSObject", "is empty but OSSBucket is given; name both the bucket and the object")]),
    ({"ImageName": "img-1", "OSSObject": "o"},
     [("OSSBucket", "is empty but OSSObject is given; name both the bucket and the object")]),
    ({"ImageName": "img-1"},
     [("OSSObject", "no image source; give OSSBucket and OSSObject, or DiskDeviceMapping")]),
])
def test_an_image_source_is_required(values: dict[str, object], expected: list[tuple[str, str]]) -> None:
    """A row names OSSBucket and OSSObject together, or gives a DiskDeviceMapping."""
    assert problems(values) == expected


@pytest.mark.parametrize("mapping", [
    '[{"OSSBucket": "b", "OSSObject": "disk, 1.qcow2"}]',
    [{"OSSRegion": "cn-beijing", "OSSObject": "d/1.qcow2", "OSSBucket": "b"}, {"OSSBucket": "b",
                                                                                "OSSObject": "d/2"}],
])
def test_disk_mapping_alone_is_a_source_and_encodes_like_the_sdk(mapping: object) -> None:
    """A DiskDeviceMapping (JSON text or array) is the source, encoded with encode_disk_mapping."""
    job = check({"ImageName": "img-1", "DiskDeviceMapping": mapping})
    assert isinstance(job, Job)
    entries = json.loads(mapping) if isinstance(mapping, str) else mapping
    assert job.query()["DiskDeviceMapping"] == encode_disk_mapping(entries)


@pytest.mark.parametrize(("mapping", "message"), [
    ("[{", "is not valid JSON (Expecting property name enclosed in double quotes at column 3); write a "
     'JSON array like [{"OSSBucket": "b", "OSSObject": "disk.qcow2"}]'),
    ('{"OSSBucket": "b"}', "must be a JSON array of objects, not an object"),
    ("[]", "is an empty array; leave it out or add an entry with OSSBucket and OSSObject"),
    ('["b/o"]', "entry 1 must be an object, not a string"),
    ('[{"OSSBucket": "b", "OSSObject": "o", "Size": "1"}]',
     "entry 1 has unknown key 'Size'; use only OSSBucket, OSSObject, OSSRegion"),
    ('[{"OSSBucket": 5, "OSSObject": "o"}]', "entry 1 OSSBucket must be a string, not a number"),
    ('[{"OSSBucket": "b", "OSSObject": "o"}, {"OSSBucket": "b"}]',
     "entry 2 has no OSSObject; each entry names an OSSBucket and an OSSObject"),
    ('[{"OSSBucket": "b", "OSSObject": "o", "OSSRegion": "cn-shanghai"}]',
     "entry 1 OSSRegion 'cn-shanghai' is not one of: cn-beijing"),
])
def test_disk_mapping_shape_is_checked(mapping: str, message: str) -> None:
    """DiskDeviceMapping is a JSON array of {OSSBucket, OSSObject[, OSSRegion]} string objects."""
    assert problems({**GOOD, "DiskDeviceMapping": mapping}) == [("DiskDeviceMapping", message)]


def test_row_reports_every_problem_at_once() -> None:
    """All of a row's problems are reported together, in field order."""
    assert [f for f, _ in problems({"ImageName": "1x", "OSType": "dos", "OSSBucket": "b"})] == [
        "ImageName", "OSType", "OSSObject"]


# --- duplicate names -----------------------------------------------------------------------------

def test_name_index_remembers_first_place_across_growth() -> None:
    """The index keeps every name's first file and line, however many it holds."""
    index = NameIndex()
    for n in range(5000):
        assert index.first_seen(f"img-{n}", "a.csv", n + 2) is None
    assert index.first_seen("img-4321", "b.csv", 9) == ("a.csv", 4323)
    assert index.first_seen("img-4321", "b.csv", 10) == ("a.csv", 4323)
    assert len(index) == 5000


def test_name_index_tells_files_apart() -> None:
    """First places are reported with their own file and line, whatever came between."""
    index = NameIndex()
    assert index.first_seen("img-a", "a.csv", 2) is None
    assert index.first_seen("img-b", "a.csv", 9) is None
    assert index.first_seen("img-c", "c.csv", 1) is None
    assert index.first_seen("img-d", "c.csv", 3) is None
    assert [index.first_seen(n, "d.csv", 7) for n in ("img-a", "img-b", "img-c", "img-d")] == [
        ("a.csv", 2), ("a.csv", 9), ("c.csv", 1), ("c.csv", 3)]


def write_csv(tmp_path: Path, name: str, *rows: str) -> str:
    path = tmp_path / name
    path.write_text("ImageName,OSSBucket,OSSObject\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return str(path)


def test_repeated_name_is_an_error_on_each_later_row(tmp_path: Path) -> None:
    """The first row with a name is valid; every later one names the line of the first."""
    path = write_csv(tmp_path, "a.csv", "img-1,b,o", "img-2,b,o", "img-1,b,p", "img-1,b,q")
    results = list(iter_rows([path], RULES))
    assert [type(r).__name__ for r in results] == ["Job", "Job", "InvalidRow", "InvalidRow"]
    assert [str(p) for r in results if isinstance(r, InvalidRow) for p in r.problems] == [
        f"{path}:4: ImageName: 'img-1' is already used on line 2; image names must be unique",
        f"{path}:5: ImageName: 'img-1' is already used on line 2; image names must be unique"]


def test_repeated_name_across_files_names_the_first_file(tmp_path: Path) -> None:
    """Names are unique across all the lists of one run; the message names the other file."""
    first = write_csv(tmp_path, "a.csv", "img-1,b,o")
    second = write_csv(tmp_path, "b.csv", "img-1,b,o")
    last = list(iter_rows([first, second], RULES))[-1]
    assert isinstance(last, InvalidRow)
    assert last.problems[-1].message == f"'img-1' is already used at {first}:2; image names must be unique"


def test_invalid_row_still_claims_its_name(tmp_path: Path) -> None:
    """A row refused for another reason still holds its name: a later row repeating it is refused."""
    path = write_csv(tmp_path, "a.csv", "img-1,b,", "img-1,b,o")
    results = list(iter_rows([path], RULES))
    assert isinstance(results[1], InvalidRow)
    assert [p.field for p in results[1].problems] == ["ImageName"]
