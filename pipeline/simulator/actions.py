"""The Describe*/DeleteImage actions, and ImportImage's response; pure functions of the state."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline.simulator.images import Image
from pipeline.simulator.responses import Reply, error_reply, json_reply
from pipeline.simulator.state import SimulatorState
from pipeline.simulator.validation import invalid, missing

MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 10

Action = Callable[[SimulatorState, Mapping[str, str], str, str | None], Reply]
"""(state, params, request_id, host) -> reply."""


def import_image_reply(image: Image, request_id: str) -> Reply:
    """ImportImage's success body: ``{RequestId, ImageId}`` (no ``Code``)."""
    return json_reply({"RequestId": request_id, "ImageId": image.image_id})


def _positive_int(params: Mapping[str, str], name: str, default: int, ceiling: int | None) -> int | str:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return f"{raw!r} is not an integer"
    if value < 1 or (ceiling is not None and value > ceiling):
        return f"{value} must be between 1 and {ceiling}" if ceiling else f"{value} must be >= 1"
    return value


def _describe(state: SimulatorState, params: Mapping[str, str], request_id: str, host: str | None,
              *, self_images: bool) -> Reply:
    page = _positive_int(params, "PageNumber", 1, None)
    if isinstance(page, str):
        bad = invalid("PageNumber", page)
        return error_reply(400, bad.code, bad.message, request_id=request_id, host=host)
    size = _positive_int(params, "PageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if isinstance(size, str):
        bad = invalid("PageSize", size)
        return error_reply(400, bad.code, bad.message, request_id=request_id, host=host)
    # A server may serve fewer than asked; it says so in PageSize, and pages are cut at that size.
    size = min(size, state.config.max_page_size)
    name = params.get("ImageName", "")
    image_id = params.get("ImageId", "")
    # A real listing lags behind creation: an image shows only ``listing_lag`` s after it exists.
    visible_before = state.wall() - state.config.listing_lag
    matches = [
        img for img in state.images.newest_first()
        if name in img.name and img.created_at <= visible_before
        and (not image_id or (image_id in img.image_id if self_images else image_id == img.image_id))
    ]
    now = state.wall()
    start = (page - 1) * size
    # The SDK models (Python and Go) declare DescribeSelfImages' paging fields strings, and
    # DescribeImages' integers; the simulator answers each in its declared type.
    paging: Callable[[int], int | str] = str if self_images else int
    return json_reply({
        "Code": 0,
        "PageNumber": paging(page),
        "PageSize": paging(size),
        "TotalCount": paging(len(matches)),
        "RequestId": request_id,
        "Images": {"Image": [img.describe(with_status=self_images, now=now)
                             for img in matches[start:start + size]]},
    })


def describe_images(state: SimulatorState, params: Mapping[str, str], request_id: str,
                    host: str | None) -> Reply:
    """DescribeImages (§4.1): ImageName substring, ImageId exact, paged; no per-image Status."""
    return _describe(state, params, request_id, host, self_images=False)


def describe_self_images(state: SimulatorState, params: Mapping[str, str], request_id: str,
                         host: str | None) -> Reply:
    """DescribeSelfImages (§4.2): ImageName and ImageId fuzzy, paged, with ``Status``."""
    return _describe(state, params, request_id, host, self_images=True)


def delete_image(state: SimulatorState, params: Mapping[str, str], request_id: str,
                 host: str | None) -> Reply:
    """DeleteImage (§4.3): ``{Code: 0, RequestId}``; an image still ``Creating`` cannot go."""
    image_id = params.get("ImageId", "")
    if not image_id:
        bad = missing("ImageId")
        return error_reply(400, bad.code, bad.message, request_id=request_id, host=host)
    image = state.images.get(image_id)
    if image is None:
        bad = invalid("ImageId", f"no image {image_id!r}")
        return error_reply(400, bad.code, bad.message, request_id=request_id, host=host)
    if image.status(state.wall()) == "Creating":
        return error_reply(400, "IncorrectStatus.Image",
                           "The current status of the image does not support this operation.",
                           request_id=request_id, host=host)
    state.images.remove(image_id)
    return json_reply({"Code": 0, "RequestId": request_id})


READ_ACTIONS: Mapping[str, Action] = {
    "DescribeImages": describe_images,
    "DescribeSelfImages": describe_self_images,
    "DeleteImage": delete_image,
}
"""Every action besides ImportImage (their quota and faults are applied before, in ``app``)."""
