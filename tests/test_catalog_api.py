"""Reference data over the API: the accelerator catalog, the name resolver, regions."""

import pytest

pytestmark = pytest.mark.django_db
A100S = ["NVIDIA A100-PCIE-40GB", "NVIDIA A100-PCIE-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB"]


@pytest.fixture
def api(client_for, customer):
    return client_for(customer)


def test_exact_name_resolves_to_one_accelerator(api):
    response = api.get("/api/v1/accelerators/resolve/", {"name": "h100 sxm"})
    assert response.status_code == 200
    assert response.json() == {
        "query": "h100 sxm", "status": "exact", "canonical_name": "NVIDIA H100-SXM5-80GB",
        "candidates": [{"canonical_name": "NVIDIA H100-SXM5-80GB", "slug": "nvidia-h100-sxm5-80gb",
                        "vendor": "NVIDIA", "memory_gb": 80.0, "form_factor": "SXM5"}],
        "message": "'h100 sxm' is NVIDIA H100-SXM5-80GB"}


def test_ambiguous_name_lists_the_candidates(api):
    body = api.get("/api/v1/accelerators/resolve/", {"name": "A100"}).json()
    assert (body["status"], body["canonical_name"]) == ("ambiguous", None)
    assert [c["canonical_name"] for c in body["candidates"]] == A100S
    assert [c["memory_gb"] for c in body["candidates"]] == [40.0, 80.0, 40.0, 80.0]
    assert body["message"] == f"'A100' is ambiguous: it could be {', '.join(A100S)}"


def test_unknown_name_is_a_400_with_suggestions(api):
    response = api.get("/api/v1/accelerators/resolve/", {"name": "H10"})
    assert response.status_code == 400
    message = "unknown accelerator 'H10'; did you mean NVIDIA H100-SXM5-80GB, NVIDIA H20 (96GB), NVIDIA A10?"
    assert response.json() == {"error": {
        "code": "unknown_accelerator", "message": message, "fields": {"name": [message]},
        "suggestions": ["NVIDIA H100-SXM5-80GB", "NVIDIA H20 (96GB)", "NVIDIA A10"]}}
    missing = api.get("/api/v1/accelerators/resolve/")
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"name": ["This parameter is required."]}


def test_catalog_and_regions_list_every_row(api):
    accelerators = api.get("/api/v1/accelerators/").json()
    assert len(accelerators) == 44
    h100 = next(a for a in accelerators if a["canonical_name"] == "NVIDIA H100-SXM5-80GB")
    assert (h100["vendor"], h100["memory_gb"], h100["bf16_tflops"], h100["stack_family"]) == (
        "NVIDIA", 80.0, 989.4, "cuda")
    regions = api.get("/api/v1/regions/").json()
    assert len(regions) >= 38
    virginia = next(r for r in regions if r["key"] == "us-east-virginia")
    assert (virginia["country"], virginia["grid_ci_gco2_per_kwh"], virginia["energy_zone"]) == (
        "US", 323.05, "us-east-virginia")
