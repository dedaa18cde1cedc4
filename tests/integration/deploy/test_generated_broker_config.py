"""The credentials `gridflex deploy-config` generates work in a real Mosquitto."""

from __future__ import annotations

import os
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gridflex.ops.broker import MosquittoBroker, free_port
from gridflex.ops.deploy_config import site_ids, write_deployment


@pytest.mark.integration
def test_generated_broker_config_accepts_site_passwords_and_enforces_the_acl(tmp_path: Path) -> None:
    """Run the real generated passwd + ACL in Mosquitto (paths and listener moved to loopback)."""
    out = tmp_path / "config"
    deployment = write_deployment(out, site_ids(2))
    port = free_port()
    conf = deployment.files["mosquitto/mosquitto.conf"]
    conf = conf.replace("/config/mosquitto", str(out / "mosquitto"))
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    if os.geteuid() == 0:
        conf += "user root\n"
    with MosquittoBroker(port=port, workdir=tmp_path / "run", config_text=conf).start():

        def connect(user: str, password: str) -> ReasonCode:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=mqtt.MQTTv5)
            client.username_pw_set(user, password)
            result: list[ReasonCode] = []
            client.on_connect = lambda _c, _u, _f, rc, _p: result.append(rc)
            client.connect("127.0.0.1", port)
            deadline = 50
            while not result and deadline:
                client.loop(timeout=0.1)
                deadline -= 1
            client.disconnect()
            assert result, f"no CONNACK for {user}"
            return result[0]

        assert not connect("b001", deployment.passwords["b001"]).is_failure
        assert not connect("cloud", deployment.passwords["cloud"]).is_failure
        assert connect("b001", deployment.passwords["b002"]).is_failure
