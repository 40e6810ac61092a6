"""One-shot initialisation of the Airflow metadata DB for VidThinker (the `airflow-init` service).

1. `airflow db migrate`
2. the pool `vidthinker_models` (slots = shards that may talk to the model server at once)
3. the connection `vidthinker_model_endpoint` (host = base URL, password = API key, extra = model names),
   written through the ORM so the key never appears on a command line or in a log
4. the simple auth manager's password file (admin user), when one is configured

Idempotent: run it on every `docker compose up`. Settings come from the environment (see compose.yaml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def airflow(*args: str) -> None:
    print("+ airflow", " ".join(args), flush=True)
    subprocess.run(["airflow", *args], check=True)


def upsert_connection() -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = env("VIDTHINKER_CONN_ID", "vidthinker_model_endpoint")
    extra = {"caption_model": env("VIDTHINKER_CAPTION_MODEL", "Qwen/Qwen2.5-VL-7B-Instruct")}
    for key, var in (("retrieval_model", "VIDTHINKER_RETRIEVAL_MODEL"), ("verify_model", "VIDTHINKER_VERIFY_MODEL"),
                     ("structured_output", "VIDTHINKER_STRUCTURED_OUTPUT")):
        if env(var):
            extra[key] = env(var)
    conn = Connection(conn_id=conn_id, conn_type="http", host=env("VIDTHINKER_MODEL_BASE_URL", "http://vllm:8000/v1"),
                      password=env("VLLM_API_KEY"), extra=json.dumps(extra),
                      description="VidThinker model server (OpenAI-compatible, vllm serve)")
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(conn)
    print(f"connection {conn_id}: host={conn.host} extra={extra} key={'set' if conn.password else 'none'}", flush=True)


def write_passwords() -> None:
    path = env("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    users = env("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "")
    password = env("AIRFLOW_ADMIN_PASSWORD")
    if not path or not password:
        return
    names = [u.split(":")[0] for u in users.split(",") if u.strip()]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({name: password for name in names}))
    os.chmod(path, 0o600)
    print(f"simple auth manager: password set for {names}", flush=True)


def main() -> int:
    airflow("db", "migrate")
    airflow("pools", "set", env("VIDTHINKER_AIRFLOW__POOL", "vidthinker_models"), env("VIDTHINKER_MODEL_SLOTS", "4"),
            "VidThinker: shard tasks that may use the model server at once")
    airflow("pools", "set", "vidthinker_gpu", env("VIDTHINKER_GPU_SLOTS", "1"),
            "VidThinker: selector training and selection jobs that need a GPU node")
    upsert_connection()
    write_passwords()
    return 0


if __name__ == "__main__":
    sys.exit(main())
