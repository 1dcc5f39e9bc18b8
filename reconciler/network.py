"""Which network this host is on, and so where base images come from.

Precedence: ``--network`` > ``AI_INFRA_NETWORK_ENV`` > ``network.mode`` > probe.
Probes run concurrently, each bounded by ``probe_timeout``; any HTTP answer
(a registry's 401 included) means reachable.  The probe result is cached for
five minutes, keyed by the probe set, so repeated runs do not pay timeouts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .errors import InputError
from .refs import InvalidReference, parse_prefix
from .stack import DEFAULT_EXTERNAL_PROBES, NetworkSection

Mode = Literal["internal", "external"]
CACHE_TTL = 300.0
ENV_MODE = "AI_INFRA_NETWORK_ENV"
ENV_REGISTRY = "INTERNAL_REGISTRY"


class ProbeResult(BaseModel):
    url: str
    kind: Literal["external", "internal"]
    answered: bool
    detail: str  # "HTTP 401" or the error


class NetworkDecision(BaseModel):
    mode: Mode
    source: str  # "--network", "AI_INFRA_NETWORK_ENV", "stack network.mode", "probe", "probe (cached)"
    registry: str
    registry_source: str
    alias_prefix: str
    probes: list[ProbeResult] = []
    note: str | None = None


def cache_dir() -> Path:
    explicit = os.environ.get("RECONCILE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("reconcile"))


def decide(
    config: NetworkSection,
    *,
    cli_mode: str | None = None,
    cli_registry: str | None = None,
    environ: dict[str, str] | None = None,
    use_cache: bool = True,
) -> NetworkDecision:
    env = os.environ if environ is None else environ
    registry, registry_source = _registry(config, cli_registry, env)
    common = dict(registry=registry, registry_source=registry_source, alias_prefix=config.alias_prefix)
    if cli_mode:
        return NetworkDecision(mode=_mode(cli_mode, "--network"), source="--network", **common)
    env_mode = env.get(ENV_MODE, "").strip().lower()
    if env_mode and env_mode != "auto":
        return NetworkDecision(mode=_mode(env_mode, ENV_MODE), source=ENV_MODE, **common)
    if config.mode != "auto":
        return NetworkDecision(mode=config.mode, source="stack network.mode", **common)
    external = DEFAULT_EXTERNAL_PROBES if config.external_probes is None else config.external_probes
    internal = (
        [f"https://{_host(registry)}/v2/", f"http://{_host(registry)}/v2/"]
        if config.internal_probes is None
        else config.internal_probes
    )
    external, internal = _expand(external, env), _expand(internal, env)
    mode, probes, cached = _probe_cached(external, internal, config.probe_timeout, use_cache)
    note = None
    if not any(p.answered for p in probes):
        note = "no probe answered" if probes else "no probes configured"
    return NetworkDecision(
        mode=mode, source="probe (cached)" if cached else "probe", probes=probes, note=note, **common
    )


def _expand(urls: list[str], env) -> list[str]:
    """``${VAR:-default}`` in probe URLs, from the environment: one stack file for hosts whose
    registries differ (the demo's ports come from RECONCILE_HUB_PORT and RECONCILE_HARBOR_PORT)."""
    from .interpolation import SubstitutionError, substitute

    expanded = []
    for url in urls:
        try:
            expanded.append(substitute(url, env, escape="$").value)
        except SubstitutionError as exc:
            raise InputError(f"probe {url[:200]!r}: {exc}", where="network probes", hint="fix the URL") from None
    return expanded


# --- what the last apply decided --------------------------------------------------------------
# A drift check from cron runs without the deploy's environment (AI_INFRA_NETWORK_ENV,
# INTERNAL_REGISTRY): left to probe, it may decide otherwise, render templates otherwise
# and report drift on a converged host.  So apply records its decision per stack and
# daemon, and a later run that makes no explicit choice uses it.


def _record_path(stack_file: Path, daemon: str) -> Path:
    key = hashlib.sha256(json.dumps([str(stack_file), daemon]).encode()).hexdigest()[:16]
    return cache_dir() / "decisions" / f"{key}.json"


def record(decision: NetworkDecision, stack_file: Path, daemon: str) -> None:
    """Keep what an apply used (best effort: a read-only cache only loses the memory)."""
    from .atomic import write_atomically

    document = {"mode": decision.mode, "source": decision.source, "registry": decision.registry, "at": time.time()}
    try:
        path = _record_path(stack_file, daemon)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(document).encode())
    except OSError:
        pass


def recalled(decision: NetworkDecision, stack_file: Path, daemon: str) -> NetworkDecision:
    """``decision`` with what the last apply on this daemon decided, where nothing here chose:
    the mode when it was only probed, the registry when only the stack file or the default named it.
    A fresh probe that disagrees is kept as a note."""
    probed = decision.source.startswith("probe")
    defaulted = decision.registry_source in ("built-in default", "stack network.internal_registry")
    if not (probed or defaulted):
        return decision
    try:
        found = json.loads(_record_path(stack_file, daemon).read_text())
        mode, source, registry = found["mode"], str(found["source"]), parse_prefix(str(found["registry"]))
    except (OSError, ValueError, KeyError, TypeError, InvalidReference):
        return decision
    if mode not in ("internal", "external"):
        return decision
    update: dict = {}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(found.get("at", 0))))
    if probed:
        update.update(mode=mode, source=f"the last apply ({source}, {when})")
        if mode != decision.mode:
            update["note"] = f"a fresh probe says {decision.mode}; using {mode} as the last apply did"
    if defaulted and registry != decision.registry:
        update.update(registry=registry, registry_source=f"the last apply ({when})")
    return decision.model_copy(update=update) if update else decision


def _mode(value: str, source: str) -> Mode:
    value = value.strip().lower()
    if value not in ("internal", "external"):
        raise InputError(
            f"{source}={value!r} is not a network mode", hint="use internal or external (or unset it to detect)"
        )
    return value  # type: ignore[return-value]


def _registry(config: NetworkSection, cli_registry: str | None, env) -> tuple[str, str]:
    for value, source in ((cli_registry, "--registry"), (env.get(ENV_REGISTRY), ENV_REGISTRY)):
        if value:
            try:
                return parse_prefix(value), source
            except InvalidReference as exc:
                raise InputError(
                    str(exc), where=source, hint="give HOST[:PORT][/PROJECT], e.g. aiharbor.msxf.local/aihpc"
                ) from None
    if "internal_registry" in config.model_fields_set:
        return config.internal_registry, "stack network.internal_registry"
    return config.internal_registry, "built-in default"


def _host(registry: str) -> str:
    return registry.split("/", 1)[0]


def _probe_cached(external: list[str], internal: list[str], timeout: float, use_cache: bool):
    key = hashlib.sha256(json.dumps([external, internal, timeout]).encode()).hexdigest()[:16]
    path = cache_dir() / f"network-{key}.json"
    if use_cache:
        try:
            data = json.loads(path.read_text())
            if time.time() - data["at"] < CACHE_TTL and data["mode"] in ("internal", "external"):
                return data["mode"], [ProbeResult(**p) for p in data["probes"]], True
        except (OSError, ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
            pass
    probes = run_probes([(u, "external") for u in external] + [(u, "internal") for u in internal], timeout)
    if any(p.answered for p in probes if p.kind == "external"):
        mode = "external"
    else:
        mode = "internal"  # an internal probe answered, or nothing did
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"at": time.time(), "mode": mode, "probes": [p.model_dump() for p in probes]}))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs the next run its probes
    return mode, probes, False


def run_probes(targets: list[tuple[str, str]], timeout: float) -> list[ProbeResult]:
    if not targets:
        return []
    from concurrent.futures import ThreadPoolExecutor  # here: most runs have the answer cached or set

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(lambda t: _probe(t[0], t[1], timeout), targets))


def _probe(url: str, kind: str, timeout: float) -> ProbeResult:
    import http.client
    import urllib.error
    import urllib.request

    # Never through a proxy: the answer must come from the registry itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            return ProbeResult(url=url, kind=kind, answered=True, detail=f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return ProbeResult(url=url, kind=kind, answered=True, detail=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return ProbeResult(url=url, kind=kind, answered=False, detail=str(reason) or type(reason).__name__)
