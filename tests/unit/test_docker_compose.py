"""docker-compose.yaml and the Dockerfile, checked without Docker: structure, pins, consistency.

- The file validates against the Compose Specification's JSON schema
  (tests/fixtures/compose/compose-spec.json, provenance in tests/fixtures/SOURCES.md).
- Every variable compose sets for the project's image is read by someone: an
  `AIRFLOW__SECTION__KEY` must be a real option of Airflow 3.3.2 or of an installed provider
  (their config descriptions, the Celery provider's included), a connection or Variable must be
  one the project uses, a `LUPUS_ALERTS_*` one the project's code reads. A typo cannot silently do
  nothing in production.
- The local cluster of the integration tests (`lupus_alerts.cluster`) is the same system: its
  environment is generated from this file and differs only where `LOCAL_DIFFERENCES` and
  `LOCAL_ADDITIONS` say why.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from lupus_alerts import cluster

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "fixtures" / "compose" / "compose-spec.json"
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
LONG_RUNNING = {*AIRFLOW_SERVICES, "postgres", "redis", "lupus-alerts-web"}
# Variables the official Airflow image's entrypoint reads (docs: "docker-stack/entrypoint.html"),
# and the ones our own airflow-init script reads.
IMAGE_ENTRYPOINT_VARIABLES = {"DUMB_INIT_SETSID", "CONNECTION_CHECK_MAX_COUNT"}
_VAR = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>(?:[^{}]|\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})*)\}"
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _airflow_options() -> set[tuple[str, str]]:
    """(section, option) of every option Airflow 3.3.2 and its installed providers describe."""
    from importlib.metadata import entry_points

    import airflow.config_templates as templates

    base = Path(templates.__file__).parent
    spec = yaml.safe_load((base / "config.yml").read_text(encoding="utf-8"))
    options = {(sec, opt) for sec, body in spec.items() for opt in (body.get("options") or {})}
    for ep in entry_points(group="apache_airflow_provider"):
        for sec, body in (ep.load()().get("config") or {}).items():
            options |= {(sec, opt) for opt in body.get("options") or {}}
    return options


def _project_string_constants() -> set[str]:
    """Every string literal in the project's code (include/, dags/, plugins/)."""
    found: set[str] = set()
    for folder in ("include", "dags", "plugins"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return found


def _reader_of(key: str, options: set[tuple[str, str]], constants: set[str], init_script: str) -> str | None:
    """Who reads the environment variable `key`, or None."""
    if key.startswith("AIRFLOW__"):
        section, _, option = key.removeprefix("AIRFLOW__").lower().partition("__")
        return "Airflow" if (section, option) in options else None
    if key.startswith("AIRFLOW_CONN_"):
        conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
        return "the project (connection)" if conn_id in constants else None
    if key.startswith("AIRFLOW_VAR_"):
        name = key.removeprefix("AIRFLOW_VAR_").lower()
        return "the project (Variable)" if any(name in c for c in constants) else None
    if key.startswith("LUPUS_ALERTS_"):
        return "the project" if key in constants else None
    if key in IMAGE_ENTRYPOINT_VARIABLES:
        return "the Airflow image's entrypoint"
    if f"${{{key}}}" in init_script or f"$${{{key}}}" in init_script:
        return "airflow-init's script"
    return None


def _project_image_services(compose: dict) -> list[str]:
    return [n for n, s in compose["services"].items() if s.get("build") == "."]


def _default_of(value: str) -> str:
    """The value compose would use with the variable unset: `${X:-default}` -> default."""
    return _VAR.sub(lambda m: m.group("arg") if m.group("op") in (":-", "-") else "", value)


def test_the_file_validates_against_the_compose_specification(compose: dict) -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # The schema does catch mistakes: a misspelt key and a wrong type.
    broken = json.loads(json.dumps(compose))
    broken["services"]["lupus-alerts-web"]["comand"] = broken["services"]["lupus-alerts-web"].pop("command")
    broken["services"]["redis"]["healthcheck"] = "redis-cli ping"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_all_official_services_are_there(compose: dict) -> None:
    services = set(compose["services"])
    assert {*AIRFLOW_SERVICES, "postgres", "redis", "airflow-init", "lupus-alerts-web"} <= services
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


def test_every_variable_compose_sets_is_read_by_airflow_or_the_project(compose: dict) -> None:
    options, constants = _airflow_options(), _project_string_constants()
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    seen = 0
    for name in _project_image_services(compose):
        for key in compose["services"][name].get("environment") or {}:
            assert _reader_of(key, options, constants, script), f"{name}: nothing reads {key}"
            seen += 1
    assert seen > 100


def test_the_reader_check_catches_misspelt_and_unread_variables(compose: dict) -> None:
    options, constants = _airflow_options(), _project_string_constants()
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert ("core", "executor") in options and ("celery", "broker_url") in options
    # The Celery provider's own options (not in Airflow core's template).
    assert ("celery", "result_backend") in options and ("celery", "task_acks_late") in options
    assert ("celery_broker_transport_options", "visibility_timeout") in options
    for key in (
        "AIRFLOW__CORE__EXECTOR",
        "AIRFLOW__CELERY__TASK_ACK_LATE",
        "AIRFLOW_CONN_SMTP_DEFALT",
        "AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_MAIL",
        "LUPUS_ALERTS_STORE",
        "SOME_VARIABLE",
    ):
        assert _reader_of(key, options, constants, script) is None, key
    for key in ("LUPUS_ALERTS_STORE_URL", "AIRFLOW_CONN_NCBI_DEFAULT", "_AIRFLOW_WWW_USER_PASSWORD"):
        assert _reader_of(key, options, constants, script), key


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


def test_celery_acks_late_with_a_visibility_timeout_longer_than_any_task(compose: dict) -> None:
    import ast as _ast

    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CELERY__TASK_ACKS_LATE"] == "True"
    assert env["AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER"] == "1"
    visibility = int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    # The longest execution_timeout in the DAGs (timedelta(minutes=N) literals): a task still
    # running must never be handed to a second worker.
    minutes = [
        node.value.value
        for path in (REPO / "dags").glob("*.py")
        for node in _ast.walk(_ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, _ast.keyword) and node.arg == "minutes" and isinstance(node.value, _ast.Constant)
    ]
    assert minutes and visibility >= 2 * 60 * max(minutes)
    heartbeat = int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    assert 60 <= heartbeat < visibility  # a lost task is retried long before Redis would resend it


def test_the_public_web_app_is_its_own_service_and_nothing_else_is_published(compose: dict) -> None:
    web = compose["services"]["lupus-alerts-web"]
    argv = [*web["entrypoint"], *web["command"]]
    assert argv[:3] == ["lupus-alerts", "web", "serve"]
    port = argv[argv.index("--port") + 1]
    assert int(argv[argv.index("--workers") + 1]) >= 2
    assert web["ports"] == [f"127.0.0.1:{port}:{port}"]  # the reverse proxy on the host forwards to it
    assert f"localhost:{port}/healthz" in " ".join(web["healthcheck"]["test"])
    # It shares the project's settings with the Airflow services, and has nothing of Airflow's.
    worker = compose["services"]["airflow-worker"]["environment"]
    assert web["environment"] and all(worker[k] == v for k, v in web["environment"].items())
    assert not [k for k in web["environment"] if k.startswith("AIRFLOW__")]
    # No port of any service is published beyond this host's loopback interface.
    for name, svc in compose["services"].items():
        for spec in svc.get("ports") or []:
            assert str(spec).startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"


# -- the local cluster is generated from this file ------------------------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> cluster.Cluster:
    root = tmp_path_factory.mktemp("cluster-env")
    return cluster.Cluster(root, config_path=root / "lupus-alerts.yaml", smtp_port=2525)


def _compose_resolved(compose_file: cluster.ComposeFile, service: str, variables: dict) -> dict:
    return {k: cluster.interpolate(v, variables) for k, v in compose_file.environment(service).items()}


def _same_but_for_the_address(compose_value: str, local_value: str) -> bool:
    """True when two values are the same setting pointing at a compose service and at its local
    stand-in: same URL scheme (or same connection type and extras), the compose side naming a
    compose service, the local side an address on this machine."""
    services = {"postgres", "redis", "airflow-apiserver", "mailpit"}
    if compose_value.startswith("{"):
        a, b = json.loads(compose_value), json.loads(local_value)
        return (
            a["host"] in services
            and b["host"] in ("127.0.0.1", "localhost")
            and {k: v for k, v in a.items() if k not in ("host", "port")}
            == {k: v for k, v in b.items() if k not in ("host", "port")}
        )
    a, b = urlsplit(compose_value), urlsplit(local_value)
    return (
        a.hostname in services
        and b.hostname in ("127.0.0.1", "localhost")
        and a.scheme == b.scheme
        and (a.hostname != "airflow-apiserver" or a.path == b.path)
    )


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "airflow-init", "lupus-alerts-web"])
def test_the_local_cluster_environment_is_compose_s_with_reasons_for_each_difference(
    local: cluster.Cluster, service: str
) -> None:
    compose_file = local.compose
    node = local.worker_names[0] if service == "airflow-worker" else None
    env = local.environment(service, node)
    want = _compose_resolved(compose_file, service, local.variables)
    mounts = compose_file.mounts(service)
    for key, value in want.items():
        assert key in env, f"{service}: {key} is in docker-compose.yaml but not in the local cluster"
        if env[key] == value or key in cluster.LOCAL_DIFFERENCES:
            continue
        if value in mounts:
            assert env[key] == str(mounts[value]), key
            continue
        assert _same_but_for_the_address(value, env[key]), f"{service}: {key} {value!r} -> {env[key]!r}"
    added = set(env) - set(want)
    assert added <= set(cluster.LOCAL_ADDITIONS), added - set(cluster.LOCAL_ADDITIONS)
    options = _airflow_options()
    for key in added | set(cluster.LOCAL_DIFFERENCES):
        if key.startswith("AIRFLOW__"):
            section, _, option = key.removeprefix("AIRFLOW__").lower().partition("__")
            assert (section, option) in options, f"the local cluster sets {key}, which Airflow does not read"


def test_the_settings_the_issue_names_come_from_compose(local: cluster.Cluster) -> None:
    env = local.environment("airflow-worker", local.worker_names[0])
    compose_env = _compose_resolved(local.compose, "airflow-worker", local.variables)
    assert env["AIRFLOW__CORE__EXECUTOR"] == compose_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:6379/")
    meta, store_db = local.databases["airflow"], local.databases["lupus_alerts"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(f"@127.0.0.1:5432/{meta}")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["LUPUS_ALERTS_STORE_URL"].endswith(f"@127.0.0.1:5432/{store_db}")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://localhost:{local.api_port}/execution/"
    for key, var in (
        ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
        ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
        ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY"),
        ("LUPUS_ALERTS_SECRET", "LUPUS_ALERTS_SECRET"),
    ):
        assert env[key] == local.variables[var] and len(env[key]) >= 32, key
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (smtp["host"], smtp["port"]) == ("127.0.0.1", 2525)
    assert env["AIRFLOW_CONN_NCBI_DEFAULT"] == compose_env["AIRFLOW_CONN_NCBI_DEFAULT"]
    # Every component gets the same secrets, database, broker and API URL.
    shared = (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
    )
    for service in [*AIRFLOW_SERVICES, "airflow-init"]:
        other = local.environment(service)
        assert all(other[k] == env[k] for k in shared), service
    web = local.environment("lupus-alerts-web")
    for key in (
        "LUPUS_ALERTS_STORE_URL",
        "LUPUS_ALERTS_SECRET",
        "LUPUS_ALERTS_CONFIG",
        "AIRFLOW_CONN_SMTP_DEFAULT",
    ):
        assert web[key] == env[key], key


def test_a_difference_without_a_reason_is_refused(local: cluster.Cluster) -> None:
    with pytest.raises(cluster.ClusterError, match="without a reason"):
        cluster.local_environment(
            local.compose,
            "airflow-worker",
            local.addresses,
            local.variables,
            differences={"AIRFLOW__CELERY__TASK_ACKS_LATE": "False"},
            additions={},
        )
    # A setting added locally that compose has too must be listed as a difference instead.
    data = json.loads(json.dumps(local.compose.data))
    data["services"]["airflow-worker"]["environment"]["AIRFLOW__API__PORT"] = "8080"
    with pytest.raises(cluster.ClusterError, match=r"are in docker-compose\.yaml"):
        cluster.local_environment(
            cluster.ComposeFile(data, local.compose.path),
            "airflow-worker",
            local.addresses,
            local.variables,
            differences={},
            additions={"AIRFLOW__API__PORT": "1234"},
        )


def test_compose_interpolation() -> None:
    v = {"SET": "x", "EMPTY": ""}
    assert cluster.interpolate("${SET}-${UNSET:-d}-${EMPTY:-e}-${EMPTY-f}", v) == "x-d-e-"
    assert cluster.interpolate('${UNSET:-{"a":{"b":1}}}', v) == '{"a":{"b":1}}'
    assert cluster.interpolate("$$HOSTNAME $SET", v) == "$HOSTNAME x"
    with pytest.raises(ValueError, match="UNSET is not set: give it"):
        cluster.interpolate("${UNSET:?give it}", v)
    with pytest.raises(ValueError, match="EMPTY"):
        cluster.interpolate("${EMPTY:?no}", v)
    assert cluster.interpolate("${EMPTY?no}", v) == ""
