"""brokerctl against a live test server: search, accelerators, recommend, tokens, login/config, errors and exit
codes. Outputs are asserted exactly (tables and JSON)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.cli.helpers import table

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

H100 = "NVIDIA H100-SXM5-80GB"


def test_search_prints_a_table_sorted_and_limited(brokerctl, market, customer, token_for):
    run = brokerctl("offers", "search", "accelerator=H100 count>=8", "--sort", "price_per_hour", "--limit", "20",
                    token=token_for(customer))
    a, b = market["cheap8"].pk, market["dear8"].pk
    assert (run.exit_code, run.stderr) == (0, "")
    assert table(run.stdout) == [
        ["ID", "PROVIDER", "ACCELERATOR", "COUNT", "MEM_GB", "VCPUS", "RAM_GB", "REGION", "$/HOUR", "$/ACC_HOUR",
         "NODES"],
        [str(a), "alpha", H100, "8", "80", "96", "1024", "us-east-virginia", "18.5000", "2.312500", "2"],
        [str(b), "beta", H100, "8", "80", "96", "1024", "us-east-virginia", "24.0000", "3.000000", "2"],
    ]
    limited = brokerctl("offers", "search", "accelerator=H100", "--limit", "1", token=token_for(customer))
    assert table(limited.stdout)[1][:4] == [str(market["four"].pk), "beta", H100, "4"]


def test_search_descending_limit_and_json(brokerctl, market, customer, token_for):
    token = token_for(customer)
    run = brokerctl("offers", "search", "accelerator=H100", "--sort", "price_per_hour", "--desc", "--limit", "2",
                    "--json", token=token)
    assert run.exit_code == 0
    rows = json.loads(run.stdout)
    assert [(r["id"], r["price_per_hour"], r["count"]) for r in rows] == [
        (market["dear8"].pk, "24.0000", 8), (market["cheap8"].pk, "18.5000", 8)]
    assert set(rows[0]) >= {"provider", "accelerator", "region", "price_per_accelerator_hour", "nodes_available"}
    # Global --json works the same, and a limit above one page follows the pages.
    everything = brokerctl("--json", "offers", "search", "--limit", "3", token=token)
    assert [r["id"] for r in json.loads(everything.stdout)] == [
        market["four"].pk, market["a100"].pk, market["cheap8"].pk]


def test_search_with_nothing_matching(brokerctl, market, customer, token_for):
    run = brokerctl("offers", "search", "accelerator=H100 price_per_hour<5", token=token_for(customer))
    assert (run.exit_code, run.stdout, run.stderr) == (0, "No offers match.\n", "")


def test_bad_query_is_an_api_error_with_exit_code_1(brokerctl, market, customer, token_for):
    run = brokerctl("offers", "search", "acc=H100", token=token_for(customer))
    assert run.exit_code == 1
    assert run.stdout == ""
    assert run.stderr.startswith("error: unknown field 'acc'; valid fields: accelerator, vendor, stack, count, ")
    assert run.stderr.endswith(", provider, reliability (HTTP 400, invalid_query)\n")
    assert run.stderr.count("\n") == 1  # the field error repeats the message, so it is not printed twice


def test_accelerator_resolution(brokerctl, customer, token_for):
    token = token_for(customer)
    run = brokerctl("accelerators", "resolve", "H100", token=token)
    assert (run.exit_code, run.stderr) == (0, "")
    assert run.stdout == (f"'H100' is {H100}\n"
                          "CANONICAL_NAME         VENDOR  MEMORY_GB  FORM\n"
                          f"{H100}  NVIDIA  80         SXM5\n")
    unknown = brokerctl("accelerators", "resolve", "H1000", token=token)
    assert (unknown.exit_code, unknown.stdout) == (1, "")
    assert unknown.stderr == ("error: unknown accelerator 'H1000'; did you mean NVIDIA H100-SXM5-80GB, Hygon DCU "
                              "BW1000/BW200 (Shensuan-3), Hygon DCU Z100? (HTTP 400, unknown_accelerator)\n")
    as_json = json.loads(brokerctl("accelerators", "resolve", "H100", "--json", token=token).stdout)
    assert (as_json["status"], as_json["canonical_name"]) == ("exact", H100)


def test_recommend_from_flags_prints_ranked_offers_and_the_quote(brokerctl, market, customer, token_for):
    run = brokerctl("recommend", "--accelerator", "H100", "--count", "8", "--hours", "10", "--objective", "cost",
                    token=token_for(customer))
    assert (run.exit_code, run.stderr) == (0, "")
    from marketplace.models import Quote

    quote = Quote.objects.get(user=customer)
    a, b = market["cheap8"].pk, market["dear8"].pk
    lines = run.stdout.splitlines()
    assert table("\n".join(lines[:3])) == [
        ["RANK", "OFFER", "PROVIDER", "ACCELERATOR", "NODES", "REGION", "$/HOUR", "EST_HOURS", "EST_TOTAL",
         "KG_CO2E", "WHY"],
        ["1", str(a), "Alpha Compute", f"8x {H100}", "1", "us-east-virginia", "18.50", "10.00", "185.00", "14.6",
         f"lowest estimated total: $185.00 for 10.0 h on 1× node of {H100}"],
        ["2", str(b), "Beta Cloud", f"8x {H100}", "1", "us-east-virginia", "24.00", "10.00", "240.00", "14.6",
         f"+$55.00 vs #1: $240.00 for 10.0 h on 1× node of {H100}"],
    ]
    assert lines[3] == "considered 4 offers, 2 feasible"
    assert lines[4].startswith("  try: accept 4 accelerators per node: adds 1 offer; cheapest $100.00 total")
    assert lines[-2] == f"quote {quote.id} (prices locked until {quote.expires_at.isoformat().replace('+00:00', 'Z')})"
    assert lines[-1] == f"order it: brokerctl orders create --quote {quote.id} --hours <H> --command '<command>'"


def test_recommend_from_a_yaml_file_and_json_output(brokerctl, market, customer, token_for, tmp_path):
    request = tmp_path / "req.yaml"
    request.write_text("resources:\n  accelerator: H100\n  count: 8\nduration_hours: 10\nobjective: cost\n")
    run = brokerctl("recommend", "--file", str(request), "--json", token=token_for(customer))
    assert run.exit_code == 0
    answer = json.loads(run.stdout)
    assert [(r["offer_id"], r["est_total_usd"]) for r in answer["recommendations"]] == [
        (market["cheap8"].pk, "185.00"), (market["dear8"].pk, "240.00")]
    assert answer["quote"]["alternatives"] == 2
    # A flag overrides the file's top-level key.
    cheaper = json.loads(brokerctl("recommend", "-f", str(request), "--max-price-per-hour", "20", "--json",
                                   token=token_for(customer)).stdout)
    assert [r["offer_id"] for r in cheaper["recommendations"]] == [market["cheap8"].pk]


def test_recommend_with_no_match_explains_why(brokerctl, market, customer, token_for):
    run = brokerctl("recommend", "-a", "H100", "--count", "8", "--hours", "10", "--max-price-per-hour", "5",
                    token=token_for(customer))
    a, b = market["cheap8"].pk, market["dear8"].pk
    assert (run.exit_code, run.stderr) == (0, "")
    assert run.stdout == (
        "No offer fits this request.\n"
        "considered 4 offers, 0 feasible\n"
        "  1 excluded: accelerator not among those requested (accelerator, workload side)\n"
        "  1 excluded: accelerators per node differ from the requested count (accelerator_count, workload side)\n"
        "  4 excluded: configuration costs more per hour than allowed (max_price_per_hour, workload side)\n"
        f"  near miss: offer {a} (Alpha Compute): +$13.50/h over max_price_per_hour\n"
        f"  near miss: offer {b} (Beta Cloud): +$19.00/h over max_price_per_hour\n"
        "  try: raise max_price_per_hour to $18.50: adds 2 offers; cheapest $185.00 total on 1 node of "
        "8× H100-SXM5-80GB (Alpha Compute, us-east-virginia)\n")


@pytest.mark.parametrize(("args", "message"), [
    (["recommend"], "Error: give a request: --file REQUEST.json, or flags such as --accelerator and --hours"),
    (["recommend", "--count", "0"], "Error: Invalid value for '--count': 0 is not in the range 1<=x<=64."),
    (["offers", "search", "--limit", "0"], "Error: Invalid value for '--limit': 0 is not in the range "
                                           "1<=x<=10000."),
    (["orders", "create", "--hours", "1", "--command", "x"], "Error: give either --quote ID, or --offer ID with "
                                                             "--nodes"),
    (["orders", "create", "--offer", "3", "--hours", "1", "--command", "x"], "Error: --offer needs --nodes"),
    (["orders", "create", "--quote", "q", "--hours", "1"], "Error: give the job: --command '...' (or --image)"),
    (["orders", "create", "--quote", "q", "--hours", "1", "-c", "x", "-e", "NOEQUALS"],
     "Error: Invalid value for --env: 'NOEQUALS' is not NAME=VALUE"),
    (["orders", "frobnicate"], "Error: No such command 'frobnicate'."),
])
def test_usage_errors_exit_2_without_calling_the_api(brokerctl, args, message):
    run = brokerctl(*args, url="http://127.0.0.1:9")  # nothing listens there: usage is checked first
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.rstrip("\n").splitlines()[-1] == message


def test_missing_or_bad_token_is_exit_1_with_a_hint(brokerctl, market):
    run = brokerctl("orders", "list")
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.stderr == ("error: Authentication credentials were not provided. (HTTP 401, not_authenticated)\n"
                          "  (give a token: brokerctl login --token KEY, BROKER_TOKEN, or --token)\n")
    bad = brokerctl("orders", "list", token="not-a-token")
    assert bad.exit_code == 1
    assert bad.stderr == ("error: Invalid or revoked token. (HTTP 401, not_authenticated)\n"
                          "  (give a token: brokerctl login --token KEY, BROKER_TOKEN, or --token)\n")


def test_unreachable_broker_is_exit_1(brokerctl):
    run = brokerctl("offers", "search", url="http://127.0.0.1:9", token="x")
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.stderr == ("error: cannot reach the broker at http://127.0.0.1:9/: Connection refused "
                          "(no answer, unreachable)\n")


def test_tokens_create_list_revoke(brokerctl, customer, token_for):
    token = token_for(customer)
    created = brokerctl("tokens", "create", "ci", token=token)
    assert created.exit_code == 0
    from marketplace.models import ApiToken

    ci = ApiToken.objects.get(user=customer, name="ci")
    key = created.stdout.strip()
    assert created.stderr == f"Created token {ci.pk} (ci). Store the key now: it is not shown again.\n"
    assert key.startswith(ci.prefix)
    listing = brokerctl("tokens", "list", token=key)
    assert listing.exit_code == 0
    rows = listing.stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "PREFIX", "CREATED", "LAST_USED", "ACTIVE"]
    assert [r.split()[:3] for r in rows[1:]] == [[str(ci.pk), "ci", ci.prefix],
                                                  [str(ci.pk - 1), "cli-test", token[: len(ci.prefix)]]]
    revoked = brokerctl("tokens", "revoke", str(ci.pk), token=token)
    assert (revoked.exit_code, revoked.stdout) == (0, f"Revoked token {ci.pk}.\n")
    assert brokerctl("tokens", "list", token=key).exit_code == 1  # the revoked key no longer works
    as_json = json.loads(brokerctl("tokens", "list", "--json", token=token).stdout)
    assert [(t["name"], t["active"]) for t in as_json] == [("ci", False), ("cli-test", True)]


def test_login_saves_url_and_token_then_commands_use_them(brokerctl, live_server, customer, token_for, cli_home,
                                                          monkeypatch):
    token = token_for(customer)
    bad = brokerctl("login", "--token", "wrong", "--url", live_server.url)
    assert bad.exit_code == 1
    assert not cli_home.exists()
    run = brokerctl("login", "--token", token, "--url", live_server.url)
    assert run.exit_code == 0
    assert run.stdout == f"Logged in to {live_server.url} with token {token[:8]}…; saved to {cli_home}\n"
    assert cli_home.read_text() == f'url = "{live_server.url}"\ntoken = "{token}"\n'
    assert stat.S_IMODE(os.stat(cli_home).st_mode) == 0o600
    # No BROKER_URL / BROKER_TOKEN now: the file is used.
    from click.testing import CliRunner

    from broker.cli.main import cli

    result = CliRunner().invoke(cli, ["config", "--json"], env={"BROKER_URL": None, "BROKER_TOKEN": None})
    assert json.loads(result.stdout) == {"url": live_server.url, "url_from": str(cli_home),
                                         "token": token[:8] + "…", "token_from": str(cli_home),
                                         "config_file": str(cli_home)}
    listed = CliRunner().invoke(cli, ["tokens", "list"], env={"BROKER_URL": None, "BROKER_TOKEN": None})
    assert listed.exit_code == 0
    out = brokerctl("logout")
    assert out.stdout == f"Removed the token from {cli_home}.\n"
    assert cli_home.read_text() == f'url = "{live_server.url}"\n'


def test_bad_config_file_is_a_usage_error(brokerctl, cli_home):
    cli_home.parent.mkdir(parents=True)
    cli_home.write_text('url = "ftp://x"\n')
    run = brokerctl("offers", "search", url="")
    assert (run.exit_code, run.stdout) == (2, "")
    assert run.stderr == (f"error: the broker URL must start with http:// or https://, not 'ftp://x' "
                          f"(from {cli_home})\n")
    cli_home.write_text("colour = 'blue'\n")
    bad = brokerctl("offers", "search")
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr == f"error: {cli_home}: unknown setting(s) colour; valid: url, token\n"


def test_the_installed_entry_point_runs_as_a_module(brokerctl_process, market, customer, token_for):
    run = brokerctl_process("offers", "search", "accelerator=A100", "--json", token=token_for(customer))
    assert run.exit_code == 0, run.stderr
    assert [r["id"] for r in json.loads(run.stdout)] == [market["a100"].pk]
    failing = brokerctl_process("offers", "search", "count>=", token=token_for(customer))
    assert failing.exit_code == 1
    assert failing.stderr.startswith("error: ")
    usage = brokerctl_process("offers", "search", "--limit", "x")
    assert usage.exit_code == 2
    helps = brokerctl_process("orders", "logs", "--help")
    assert helps.exit_code == 0
    assert helps.stdout.startswith("Usage: brokerctl orders logs [OPTIONS] ORDER_ID\n")
