"""docker-compose.yaml and the Dockerfile, checked without Docker: structure, pins, consistency.

Every `AIRFLOW__SECTION__KEY` must name a real option of Airflow 3.3.2 (its config template, plus
the provider fallback defaults that cover the Celery executor), so a typo cannot silently do
nothing in production.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
LONG_RUNNING = {*AIRFLOW_SERVICES, "postgres", "redis"}
_VAR = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>(?:[^{}]|\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})*)\}"
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _airflow_options() -> set[tuple[str, str]]:
    import configparser

    import airflow.config_templates as templates

    base = Path(templates.__file__).parent
    spec = yaml.safe_load((base / "config.yml").read_text(encoding="utf-8"))
    options = {(sec, opt) for sec, body in spec.items() for opt in (body.get("options") or {})}
    fallback = configparser.ConfigParser()
    fallback.read(base / "provider_config_fallback_defaults.cfg")
    options |= {(sec, opt) for sec in fallback.sections() for opt in fallback[sec]}
    return options


def _default_of(value: str) -> str:
    """The value compose would use with the variable unset: `${X:-default}` -> default."""
    return _VAR.sub(lambda m: m.group("arg") if m.group("op") in (":-", "-") else "", value)


def test_all_official_services_are_there(compose: dict) -> None:
    services = set(compose["services"])
    assert {*AIRFLOW_SERVICES, "postgres", "redis", "airflow-init"} <= services
    assert "mailpit" in services and compose["services"]["mailpit"]["profiles"] == ["dev"]


def test_every_image_is_pinned_and_the_dockerfile_extends_airflow_3_3_2(compose: dict) -> None:
    for name, svc in compose["services"].items():
        image = _default_of(svc.get("image", ""))
        assert image, f"{name} has no image"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert base is not None and base.group(1).startswith("apache/airflow:3.3.2")
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "requirements.txt" in text and re.search(r"pip install .*-e \.|pip install .* \.$", text, re.M)


def test_each_airflow_service_runs_its_command_with_a_healthcheck(compose: dict) -> None:
    for name, command in AIRFLOW_SERVICES.items():
        svc = compose["services"][name]
        assert svc["command"] == command, name
        assert svc.get("build") == "." and "healthcheck" in svc, name
        assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    for name in LONG_RUNNING:
        assert compose["services"][name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    scheduler_health = " ".join(compose["services"]["airflow-scheduler"]["healthcheck"]["test"])
    assert compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"]
    assert ":8974/health" in scheduler_health


def test_all_components_share_executor_database_broker_and_jwt_secret(compose: dict) -> None:
    envs = {name: compose["services"][name]["environment"] for name in [*AIRFLOW_SERVICES, "airflow-init"]}
    for key in (
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "LUPUS_ALERTS_CONFIG",
        "LUPUS_ALERTS_SECRET",
    ):
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{key} differs: {values}"
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "postgres" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert "airflow-apiserver:8080/execution/" in env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    # The JWT secret must be required, never a baked-in default that differs per deployment.
    assert ":?" in env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_airflow_setting_is_a_real_option(compose: dict) -> None:
    known = _airflow_options()
    seen = 0
    for name, svc in compose["services"].items():
        for key in svc.get("environment") or {}:
            if not key.startswith("AIRFLOW__"):
                continue
            section, _, option = key.removeprefix("AIRFLOW__").lower().partition("__")
            assert (section, option) in known, f"{name}: {key} is not an Airflow 3.3.2 option"
            seen += 1
    assert seen > 20


def test_the_option_check_catches_a_misspelt_setting() -> None:
    known = _airflow_options()
    assert ("core", "executor") in known
    assert ("core", "exector") not in known
    assert ("celery", "broker_url") in known


def test_connections_in_the_environment_are_valid_airflow_json(compose: dict) -> None:
    from lupus_alerts.connections import parse_connection

    env = compose["services"]["airflow-worker"]["environment"]
    smtp = parse_connection("smtp_default", _default_of(env["AIRFLOW_CONN_SMTP_DEFAULT"]))
    assert smtp.conn_type == "smtp" and smtp.host == "mailpit" and smtp.port == 1025
    assert smtp.extra == {"disable_ssl": True, "disable_tls": True}
    json.loads(_default_of(env["AIRFLOW_CONN_NCBI_DEFAULT"]))


def test_project_folders_are_mounted_and_the_config_is_the_mounted_file(compose: dict) -> None:
    mounts = {m.split(":")[0]: m.split(":")[1] for m in compose["services"]["airflow-worker"]["volumes"]}
    for folder in ("./dags", "./plugins", "./include", "./config"):
        assert folder in mounts, f"{folder} is not mounted"
        assert (REPO / folder).is_dir()
    assert (
        mounts["./lupus-alerts.yaml"]
        == compose["services"]["airflow-worker"]["environment"]["LUPUS_ALERTS_CONFIG"]
    )
    env = compose["services"]["airflow-worker"]["environment"]
    assert mounts["./dags"] == env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert mounts["./plugins"] == env["AIRFLOW__CORE__PLUGINS_FOLDER"]


def test_init_creates_the_ncbi_pool_and_migrates_both_databases(compose: dict) -> None:
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert re.search(r"airflow pools set ncbi \d+", script)
    assert "lupus-alerts db upgrade" in script


def test_every_required_variable_is_listed_in_env_example(compose: dict) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = {m.group("name") for m in _VAR.finditer(text) if m.group("op") in (":?", "?")}
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.M))
    assert required and required <= listed, required - listed
