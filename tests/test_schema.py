"""The OpenAPI schema generates without warnings, validates, and documents q= and the error shape."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_spectacular_validates_with_no_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    result = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
                             "--file", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr
    schema = yaml.safe_load(out.read_text())
    search = schema["paths"]["/api/v1/offers/"]["get"]
    q = next(p for p in search["parameters"] if p["name"] == "q")
    assert "notin" in q["description"] and "price_per_hour" in q["description"]
    assert set(search["responses"]) == {"200", "400", "401", "403"}
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"] == "#/components/schemas/ErrorBody"
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "fields"}
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
    assert {"/api/v1/offers/bulk/", "/api/v1/offers/{id}/unlist/", "/api/v1/provider/offers/",
            "/api/v1/tokens/", "/api/v1/tokens/{id}/", "/api/v1/accelerators/resolve/"} <= set(schema["paths"])


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
