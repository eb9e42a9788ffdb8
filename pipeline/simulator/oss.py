"""The simulator's OSS: objects from a JSON Lines file, ListObjectsV2, HeadObject, ranged GetObject."""

from __future__ import annotations

import base64
import bisect
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from pipeline.errors import ConfigError
from pipeline.simulator.oss_auth import OssVerifier
from pipeline.simulator.responses import Reply

QCOW2_MAGIC = b"QFI\xfb"
DEFAULT_HEAD = QCOW2_MAGIC + b"\x00\x00\x00\x03"
MAX_KEYS = 1000


@dataclass(frozen=True, slots=True)
class OssObject:
    """One stored object: its size and the first bytes a ranged GET returns."""

    size: int
    head: bytes


OPEN_OBJECT = OssObject(1 << 30, DEFAULT_HEAD)


def parse_objects(lines: Iterable[str], where: str) -> list[tuple[str, str, OssObject]]:
    """``{"bucket", "key", "size", "first_bytes"?}`` per line (first_bytes: base64; default: the
    qcow2 magic for a ``.qcow2`` key of size >= 8, else zeros)."""
    out: list[tuple[str, str, OssObject]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            bucket, key, size = str(row["bucket"]), str(row["key"]), int(row["size"])
            raw = row.get("first_bytes")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{where}:{number}: not an OSS object line ({exc}); expected "
                              '{"bucket": ..., "key": ..., "size": N}') from exc
        if raw is not None:
            head = base64.b64decode(raw)
        elif key.endswith(".qcow2") and size >= len(DEFAULT_HEAD):
            head = DEFAULT_HEAD
        else:
            head = b"\x00" * min(size, 8)
        out.append((bucket, key, OssObject(size, head[:size])))
    return out


def load_objects(path: Path) -> list[tuple[str, str, OssObject]]:
    """Read an ``--oss-objects`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the OSS objects file {path}: {exc.strerror}") from exc
    return parse_objects(text.splitlines(), str(path))


@dataclass(slots=True)
class OssStore:
    """Buckets of sorted keys; what the simulated OSS serves."""

    objects: dict[str, dict[str, OssObject]] = field(default_factory=dict)
    _sorted: dict[str, list[str]] = field(default_factory=dict)
    denied: frozenset[str] = frozenset()
    """Buckets that answer 403 AccessDenied to everything."""
    open_buckets: bool = False
    """A bucket not loaded holds every key (``SimulatorConfig.oss_open_buckets``); without it such a
    bucket answers 404 NoSuchBucket, as OSS does."""
    calls: Counter[str] = field(default_factory=Counter)
    times: list[float] = field(default_factory=list)
    """Arrival time (monotonic) of every HeadObject/GetObject, for rate checks."""

    def has_bucket(self, bucket: str) -> bool:
        """True for a bucket the objects name, a denied one, or any bucket with ``open_buckets``."""
        return self.open_buckets or bucket in self.objects or bucket in self.denied

    @property
    def loaded(self) -> bool:
        """True when any object (or denied bucket) was configured: ImportImage then checks sources."""
        return bool(self.objects) or bool(self.denied)

    def add(self, items: Iterable[tuple[str, str, OssObject]]) -> None:
        """Add or replace objects."""
        for bucket, key, obj in items:
            keys = self.objects.setdefault(bucket, {})
            if key not in keys:
                bisect.insort(self._sorted.setdefault(bucket, []), key)
            keys[key] = obj

    def get(self, bucket: str, key: str) -> OssObject | None:
        """The object, or None."""
        if self.open_buckets and bucket not in self.objects:
            return OPEN_OBJECT
        return self.objects.get(bucket, {}).get(key)

    def list_v2(self, bucket: str, prefix: str, delimiter: str, start: str,
                max_keys: int) -> tuple[list[tuple[str, OssObject]], list[str], str | None]:
        """(contents, common prefixes, next token) of one page, keys after ``start``."""
        keys = self._sorted.get(bucket, [])
        index = bisect.bisect_right(keys, start) if start else bisect.bisect_left(keys, prefix)
        contents: list[tuple[str, OssObject]] = []
        prefixes: list[str] = []
        last = ""
        while index < len(keys) and len(contents) + len(prefixes) < max_keys:
            key = keys[index]
            if not key.startswith(prefix):
                break
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                prefixes.append(common)
                last = common + "\U0010ffff"
                index = bisect.bisect_left(keys, last)
                continue
            contents.append((key, self.objects[bucket][key]))
            last = key
            index += 1
        more = index < len(keys) and keys[index].startswith(prefix)
        return contents, prefixes, (last if more else None)


def _error(status: int, code: str, message: str, request_id: str, *, body: bool = True,
           fields: tuple[tuple[str, str], ...] = (), ec: str = "0026-00000001") -> Reply:
    """OSS's XML error; a HEAD answer has no body, so OSS sends the same XML base64-encoded in
    ``x-oss-err`` (the SDK reads it from there)."""
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields)
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}'
            f"</Message><RequestId>{request_id}</RequestId>{extra}<EC>{ec}</EC></Error>")
    headers: tuple[tuple[bytes, bytes], ...] = ((b"x-oss-request-id", request_id.encode()),
                                                (b"x-oss-ec", ec.encode()))
    if not body:
        headers += ((b"x-oss-err", base64.b64encode(text.encode())),)
    return Reply(status, text.encode() if body else b"", code, content_type=b"application/xml",
                 headers=headers)


def _no_such_bucket(bucket: str, host: str, request_id: str, *, body: bool = True) -> Reply:
    """What OSS answers for a bucket that does not exist, whatever the request."""
    return _error(404, "NoSuchBucket", "The specified bucket does not exist.", request_id, body=body,
                  fields=(("HostId", host), ("BucketName", bucket)), ec="0015-00000101")


def handle_oss(store: OssStore, verifier: OssVerifier, method: str, path: str, query: bytes,
               headers: Mapping[str, str], request_id: str, now: float) -> Reply:
    """Serve one path-style OSS request: ``/bucket/?list-type=2`` or ``/bucket/key``."""
    bucket, _, key = path.lstrip("/").partition("/")
    failure = verifier.verify(method, path, query.decode("latin-1"), headers)
    if failure is not None:
        return _error(403, failure[0], failure[1], request_id)
    if bucket in store.denied:
        store.calls["denied"] += 1
        return _error(403, "AccessDenied", "You have no right to access this object because of bucket acl.",
                      request_id, body=method != "HEAD")
    params = dict(parse_qsl(query.decode("utf-8"), keep_blank_values=True))
    host = headers.get("host", "localhost")
    if not key:
        if method != "GET" or params.get("list-type") != "2":
            return _error(400, "NotImplemented", "only ListObjectsV2 is simulated", request_id)
        store.calls["ListObjectsV2"] += 1
        if bucket not in store.objects:
            return _no_such_bucket(bucket, host, request_id)
        return _list(store, bucket, params, request_id)
    store.calls["HeadObject" if method == "HEAD" else "GetObject"] += 1
    store.times.append(now)
    if not store.has_bucket(bucket):
        return _no_such_bucket(bucket, host, request_id, body=method != "HEAD")
    obj = store.get(bucket, key)
    if obj is None:
        return _error(404, "NoSuchKey", "The specified key does not exist.", request_id,
                      body=method != "HEAD")
    common = ((b"x-oss-request-id", request_id.encode()), (b"etag", b'"00000000000000000000000000000000"'),
              (b"last-modified", b"Mon, 01 Jan 2024 00:00:00 GMT"))
    if method == "HEAD":
        return Reply(200, b"", "ok", content_type=b"application/octet-stream",
                     headers=common, content_length=obj.size)
    if method != "GET":
        return _error(405, "MethodNotAllowed", f"{method} is not simulated", request_id)
    wanted = headers.get("range", "")
    if wanted.startswith("bytes=") and obj.size:
        first, _, last = wanted[6:].partition("-")
        start, end = int(first or 0), min(int(last) if last else obj.size - 1, obj.size - 1)
        data = obj.head[start:end + 1] + b"\x00" * max(0, end + 1 - max(start, len(obj.head)))
        return Reply(206, data, "ok", content_type=b"application/octet-stream",
                     headers=(*common, (b"content-range", f"bytes {start}-{end}/{obj.size}".encode())))
    if obj.size > len(obj.head):
        return _error(400, "NotImplemented", "the simulator serves whole objects only up to their first "
                      "bytes: send a Range", request_id)
    return Reply(200, obj.head, "ok", content_type=b"application/octet-stream", headers=common)


def _list(store: OssStore, bucket: str, params: Mapping[str, str], request_id: str) -> Reply:
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    try:
        max_keys = int(params.get("max-keys", "100"))
    except ValueError:
        max_keys = -1
    if not 1 <= max_keys <= MAX_KEYS:
        return _error(400, "InvalidArgument", f"max-keys must be between 1 and {MAX_KEYS}", request_id)
    start = params.get("continuation-token") or params.get("start-after", "")
    contents, prefixes, token = store.list_v2(bucket, prefix, delimiter, start, max_keys)
    url = params.get("encoding-type") == "url"

    def enc(text: str) -> str:
        return quote(text, safe="/") if url else escape(text)

    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>',
             f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
             f"<Delimiter>{enc(delimiter)}</Delimiter>" if delimiter else "",
             "<EncodingType>url</EncodingType>" if url else "",
             f"<IsTruncated>{'true' if token else 'false'}</IsTruncated>",
             f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>"]
    if token:
        parts.append(f"<NextContinuationToken>{escape(token)}</NextContinuationToken>")
    for key, obj in contents:
        parts.append(f"<Contents><Key>{enc(key)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                     f'<ETag>"00000000000000000000000000000000"</ETag><Size>{obj.size}</Size>'
                     "<StorageClass>Standard</StorageClass></Contents>")
    for common in prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return Reply(200, "".join(parts).encode(), "ok", content_type=b"application/xml",
                 headers=((b"x-oss-request-id", request_id.encode()),))


def named_objects(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """(bucket, key) of every object an ImportImage names: top level and each DiskDeviceMapping entry."""
    named: list[tuple[str, str]] = []
    if params.get("OSSBucket") and params.get("OSSObject"):
        named.append((params["OSSBucket"], params["OSSObject"]))
    try:
        entries = json.loads(params.get("DiskDeviceMapping") or "[]")
    except ValueError:
        entries = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("OSSBucket") and entry.get("OSSObject"):
            named.append((str(entry["OSSBucket"]), str(entry["OSSObject"])))
    return named


def missing_source(store: OssStore, params: Mapping[str, str]) -> bool:
    """With objects loaded: True when an object the import names is missing (the image will fail)."""
    if not store.objects:
        return False
    return any(store.get(bucket, key) is None for bucket, key in named_objects(params)
               if bucket not in store.denied)
