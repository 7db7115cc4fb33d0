"""brokerctl: the broker's command-line client. Talks only to the public API (/api/v1/).

Exit codes: 0 done; 1 the API refused or could not be reached (the error and its field errors are printed);
2 usage error (bad flags or arguments, bad configuration); 3 a watched order ended unsuccessfully
(failed, cancelled, expired).
"""

from __future__ import annotations

import click

from broker.cli.client import ApiError
from broker.cli.config import ConfigError
from broker.cli.output import print_api_error
from broker.cli.state import EXIT_API_ERROR, EXIT_USAGE, State


class BrokerGroup(click.Group):
    """Turns API errors into exit code 1 and configuration errors into exit code 2, with a message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            print_api_error(exc)
            ctx.exit(EXIT_API_ERROR)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(cls=BrokerGroup, context_settings=CONTEXT)
@click.option("--url", metavar="URL", help="Broker URL (else BROKER_URL, the config file, http://127.0.0.1:8000).")
@click.option("--token", metavar="KEY", help="API token (else BROKER_TOKEN, then the config file).")
@click.option("--config", "config_file", metavar="PATH",
              help="Config file (else BROKERCTL_CONFIG, then ~/.config/brokerctl/config.toml).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for each API call.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for every command (same as each --json).")
@click.version_option("0.1.0", prog_name="brokerctl")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, config_file: str | None, timeout: float,
        as_json: bool) -> None:
    """Search offers, get recommendations, place and watch orders on the compute broker."""
    ctx.obj = State(url=url, token=token, config=config_file, timeout=timeout, json=as_json)


def register() -> None:
    from broker.cli.commands import accelerators, account, invoices, offers, orders, recommend, tokens

    for module in (account, offers, accelerators, recommend, orders, tokens, invoices):
        module.register(cli)


register()


def main() -> None:
    cli.main(prog_name="brokerctl")
