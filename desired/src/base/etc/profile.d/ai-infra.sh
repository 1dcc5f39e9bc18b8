# Login environment shared by every ai-infra container.
export AI_INFRA_HOME=/opt/ai-infra
export PATH="$AI_INFRA_HOME/bin:$PATH"
[ -r /etc/ai-infra/release ] && . /etc/ai-infra/release
