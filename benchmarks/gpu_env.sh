# Source this on a machine where the package is not installed (the GPU machine receives only the working tree):
#   . benchmarks/gpu_env.sh
# installs the wheels carried in .whl/ (benchmarks/gpu_wheels.sh) into a folder of their own, and makes
# llm_cmdp_env and llm_cmdp_agents (the agents/ folder, as pyproject installs it) importable through PYTHONPATH.
# Needs nothing from the network. Does nothing where both already import.
_llm_cmdp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_llm_cmdp_py="${PYTHON:-python3}"
if ! (cd /tmp && "$_llm_cmdp_py" -c "import llm_cmdp_env, llm_cmdp_agents, gymnasium, math_verify" 2>/dev/null); then
  _llm_cmdp_site="${LLM_CMDP_SITE:-/tmp/llm_cmdp_site}"
  mkdir -p "$_llm_cmdp_site"
  if compgen -G "$_llm_cmdp_root/.whl/*.whl" > /dev/null; then
    "$_llm_cmdp_py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$_llm_cmdp_site" "$_llm_cmdp_root"/.whl/*.whl || echo "gpu_env: installing .whl/ failed" >&2
  fi
  ln -sfn "$_llm_cmdp_root/agents" "$_llm_cmdp_site/llm_cmdp_agents"
  export PYTHONPATH="$_llm_cmdp_root:$_llm_cmdp_site${PYTHONPATH:+:$PYTHONPATH}"
  (cd /tmp && "$_llm_cmdp_py" -c "import llm_cmdp_env, llm_cmdp_agents, gymnasium, math_verify") \
    || echo "gpu_env: the package still does not import (run benchmarks/gpu_wheels.sh and carry .whl)" >&2
fi
unset _llm_cmdp_root _llm_cmdp_py _llm_cmdp_site
