"""The JSON path and the in-process API give the same answer, byte for byte."""

from __future__ import annotations

import json
import random

import pytest

from core import DoseRequest, RequestError, decide_json, recommend, recommend_json, recommend_lines
from core.models import DoseResponse, ErrorResponse
from tests.generated_requests import make_request
from tests.helpers import platelets, romiplostim

GENERATED = [json.dumps(make_request(random.Random(seed))) for seed in range(600)]


@pytest.mark.parametrize("chunk", range(6))
def test_json_path_bytes_equal_the_validated_model(chunk: int):
    for line in GENERATED[chunk * 100 : (chunk + 1) * 100]:
        fast, ok = recommend_json(line)
        model = decide_json(line)
        assert ok is isinstance(model, DoseResponse)
        assert fast == model.model_dump_json()
        if ok:
            assert DoseResponse.model_validate_json(fast) == model
            assert recommend(DoseRequest.model_validate_json(line)).model_dump_json() == fast


def test_batch_equals_single_requests():
    lines = GENERATED[:50]
    assert list(recommend_lines(lines)) == [recommend_json(line)[0] for line in lines]


def test_in_process_api_raises_request_error_with_the_contract_fields():
    request = DoseRequest.model_validate(romiplostim(labs=[platelets(52000, "2026-11-21")]))
    with pytest.raises(RequestError) as caught:
        recommend(request)
    assert caught.value.code == "implausible_value"
    assert caught.value.field == "labs[0].value"
    assert isinstance(caught.value.to_response(), ErrorResponse)
