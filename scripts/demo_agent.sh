#!/bin/sh
# The reference provider agent of the demo provider, for `make run` (Procfile line:
#   agent: sh scripts/demo_agent.sh
# ). It lists this machine as an offer of `demo-gpu-host` and really runs demo orders' commands here.
#
# Idempotent: the secret is generated once into $BROKER_VAR_DIR/demo-agent.secret (mode 600) and enrolled with the
# broker's database on every start (same secret: no change). The agent retries its registration until the web
# process answers. Jobs run as local processes under $BROKER_VAR_DIR/agent/jobs/<ref>/; stopping `make run`
# terminates them (--kill-jobs-on-exit).
#
# The local machine has no accelerator the broker could list, and an offer needs one (Offer.accelerator is
# required): the demo declares 1x NVIDIA T4 and says so in the offer's name. Settings: AGENT_PORT (8701),
# AGENT_BROKER_URL (http://$WEB_BIND), AGENT_SLOTS (4), AGENT_ACCELERATOR, AGENT_REGION (eu-sweden).
set -eu
VAR_DIR="${BROKER_VAR_DIR:-var}"
SECRET_FILE="$VAR_DIR/demo-agent.secret"
mkdir -p "$VAR_DIR"
if [ ! -s "$SECRET_FILE" ]; then
    (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$SECRET_FILE")
fi
python manage.py agent_enroll --provider demo-gpu-host --secret-file "$SECRET_FILE" --quiet
exec python manage.py provider_agent \
    --port "${AGENT_PORT:-8701}" \
    --broker "${AGENT_BROKER_URL:-http://${WEB_BIND:-127.0.0.1:8000}}" \
    --provider demo-gpu-host \
    --secret-file "$SECRET_FILE" \
    --work-dir "$VAR_DIR/agent" \
    --slots "${AGENT_SLOTS:-4}" \
    --accelerator "${AGENT_ACCELERATOR:-NVIDIA T4}" \
    --region "${AGENT_REGION:-eu-sweden}" \
    --price-per-hour 0.05 \
    --offer-name "This machine via the reference agent (demo: CPU only, no GPU attached; listed as 1x T4)" \
    --external-id agent-local-demo \
    --kill-jobs-on-exit
