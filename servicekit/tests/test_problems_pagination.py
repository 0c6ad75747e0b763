import pytest

from servicekit.pagination import decode_cursor, encode_cursor, page
from servicekit.problems import Problem, flatten_errors, problem_body
from servicekit.request_id import accept_or_new, is_sane_id


def test_flatten_errors_drops_location_and_nests_paths():
    messages = {
        "json": {
            "items": {0: {"qty": ["Must be between 1 and 10000."]}, "_schema": ["Too many items."]},
            "customer_id": ["Missing data for required field."],
        },
        "query": {"limit": ["Not a valid integer."]},
    }
    assert flatten_errors(messages) == {
        "items.0.qty": ["Must be between 1 and 10000."],
        "items": ["Too many items."],
        "customer_id": ["Missing data for required field."],
        "limit": ["Not a valid integer."],
    }


def test_flatten_errors_schema_level_goes_to_body():
    assert flatten_errors({"json": {"_schema": ["Invalid input type."]}}) == {"body": ["Invalid input type."]}


def test_problem_body_shape():
    body = Problem(409, "insufficient_stock", "Not enough", extra={"product_id": 3}).to_dict("rid")
    assert body == {
        "type": "urn:b2b-platform:problem:insufficient_stock",
        "title": "Conflict",
        "status": 409,
        "detail": "Not enough",
        "code": "insufficient_stock",
        "request_id": "rid",
        "product_id": 3,
    }
    assert "errors" not in problem_body(400, "x", "y")


def test_cursor_round_trip_and_rejections():
    cursor = encode_cursor({"id": 41})
    assert decode_cursor(cursor) == {"id": 41}
    for bad in [
        "",
        "!!!",
        "e30",
        encode_cursor({"id": "41"}),
        encode_cursor({"id": 0}),
        encode_cursor({"id": True}),
        encode_cursor({"id": 1, "x": 2}),
        encode_cursor([1]),
        "a" * 600,
        "eyJpZCI6IDE4NDQ2NzQ0MDczNzA5NTUxNjE2fQ",
    ]:
        with pytest.raises(Problem) as info:
            decode_cursor(bad)
        assert info.value.status == 400 and info.value.code == "invalid_cursor"


def test_page_envelope():
    assert page([1], limit=5, next_position=None) == {"data": [1], "pagination": {"next_cursor": None, "limit": 5}}
    assert page([1], limit=1, next_position={"id": 1})["pagination"]["next_cursor"] == encode_cursor({"id": 1})


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("", False),
        (None, False),
        ("<script>", False),
    ],
)
def test_request_id_acceptance(given, kept):
    assert is_sane_id(given) is kept
    result = accept_or_new(given)
    assert (result == given) is kept
    assert 1 <= len(result) <= 128
