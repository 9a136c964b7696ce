# The lupus-alerts image: Airflow 3.3.2 plus the project package (lupus_alerts) and its pins.
# Built by docker-compose.yaml (`docker compose build`); every Airflow service runs it.
FROM apache/airflow:3.3.2-python3.11

USER root
# lxml and psycopg2 ship wheels; nothing to compile. Keep the image lean.
USER airflow

WORKDIR /opt/airflow/project
# Pins first, so the dependency layer is cached across code changes. Airflow itself is already
# in the base image at exactly this version; the constraints file keeps pip from moving it.
COPY --chown=airflow:root requirements.txt requirements-lock.txt ./
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r requirements.txt -c requirements-lock.txt

COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root include ./include
# Editable, so the include/ bind mount in docker-compose.yaml is what runs (code updates
# without a rebuild); dependencies are already installed above.
RUN pip install --no-cache-dir --no-deps -e .

WORKDIR /opt/airflow
