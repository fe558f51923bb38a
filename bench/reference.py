"""The yardstick the launch benchmark is read against, measured on this machine with the same
load driver and bench platform: a pylti1p3 tool written like pylti1p3's Flask example
(github.com/dmitry-viskov/pylti1.3-flask-example, game/app.py), under gunicorn as the tool is.

    .venv/bin/python bench/reference.py [--seconds 20] [--processes 4]

As in the example: the JSON tool configuration read on every request, launch data in
Flask-Caching's per-process SimpleCache, the platform's JWKS fetched on every launch (the
example never turns on pylti1p3's key caching), and the launch POST answering with the page
itself (two requests, where the tool makes three). Left out: its cookie-check page at login
(it needs a browser's JavaScript; the redirect is what it leads to), its `pprint` of every
launch, and debug mode. The state cookie is sent back as a browser would.

Its cache is per process, but the driver, like a browser, keeps its connection alive, so a
launch's login and POST reach the same worker and find their state: no launch fails for it
here.
"""

from __future__ import annotations

import argparse
import contextlib
import json

from common import (
    Platform,
    ProcessCpu,
    app_server,
    cpu_split,
    login,
    machine_cpu_seconds,
    request,
    run_load,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

APP = """
import os

from flask import Flask, render_template_string
from flask_caching import Cache
from pylti1p3.contrib.flask import (
    FlaskCacheDataStorage, FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest,
)
from pylti1p3.tool_config import ToolConfJsonFile

app = Flask("pylti1p3-reference")
app.config.from_mapping(CACHE_TYPE="SimpleCache", CACHE_DEFAULT_TIMEOUT=600, SECRET_KEY="bench")
cache = Cache(app)
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
PAGE = '''<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
</head><body><h1>{{ title }}</h1><p>Hello, {{ name }}.</p>
<p>Launch {{ launch_id }}{% if deep %} (deep linking){% endif %}.</p>
<ul>{% for key, value in claims.items() %}<li>{{ key }}</li>{% endfor %}</ul></body></html>'''


@app.route("/login/", methods=["GET", "POST"])
def login():
    tool_conf = ToolConfJsonFile(CONFIG)
    flask_request = FlaskRequest()
    target_link_uri = flask_request.get_param("target_link_uri")
    oidc_login = FlaskOIDCLogin(
        flask_request, tool_conf, launch_data_storage=FlaskCacheDataStorage(cache)
    )
    return oidc_login.redirect(target_link_uri)


@app.route("/launch/", methods=["POST"])
def launch():
    tool_conf = ToolConfJsonFile(CONFIG)
    message_launch = FlaskMessageLaunch(
        FlaskRequest(), tool_conf, launch_data_storage=FlaskCacheDataStorage(cache)
    )
    data = message_launch.get_launch_data()
    return render_template_string(
        PAGE,
        title="Game Example",
        name=data.get("name", ""),
        deep=message_launch.is_deep_link_launch(),
        launch_id=message_launch.get_launch_id(),
        claims=data,
    )
"""


def reference_files(platform: Platform) -> dict[str, bytes]:
    """The example's tool configuration (JSON) and key pair, registering the bench platform."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = {
        platform.issuer: [
            {
                "default": True,
                "client_id": platform.client_id,
                "auth_login_url": platform.issuer + "/auth",
                "auth_token_url": platform.issuer + "/token",
                "auth_audience": None,
                "key_set_url": platform.issuer + "/jwks",
                "key_set": None,
                "private_key_file": "private.key",
                "public_key_file": "public.key",
                "deployment_ids": [platform.deployment_id],
            }
        ]
    }
    return {
        "config.json": json.dumps(config).encode(),
        "private.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "public.key": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


def reference_launch(platform: Platform, base: str, sub: str) -> None:
    """Login (302, with its state cookie), then the launch POST answering with the page."""
    query, headers = login(platform, base + "/login/", sub, base + "/launch/")
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = platform.id_token(sub, query["nonce"][0], "Learner", base + "/launch/")
    status, _, body = request(
        "POST",
        base + "/launch/",
        {"id_token": token, "state": query["state"][0]},
        headers={"Cookie": cookie},
    )
    if status != 200 or b"Hello, " not in body:
        raise RuntimeError(f"launch answered {status}")


def bench(seconds: float, processes: int) -> None:
    platform = Platform()
    platform.serve()
    label = "pylti1p3 example"
    with app_server(APP, reference_files(platform)) as (base, pids):
        for index in range(20):
            # (With 2 workers, a launch may land where its state is not.)
            with contextlib.suppress(RuntimeError):
                reference_launch(platform, base, f"warm-{index}")
        meter = ProcessCpu(lambda: pids)
        machine_before = machine_cpu_seconds()

        def one(index: int, iteration: int) -> None:
            reference_launch(platform, base, f"trainee-{(index * 7919 + iteration) % 300:03d}")

        result = run_load(one, processes=processes, seconds=seconds)
        tool_cpu = meter.used()
        machine_cpu = machine_cpu_seconds() - machine_before
    platform.stop()
    print(result.line(f"{label:16} launches"))
    if result.count:
        print(f"{label:16} {cpu_split(result.count, tool_cpu, 0.0, machine_cpu)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    bench(args.seconds, args.processes)


if __name__ == "__main__":
    main()
