"""Operations: the MQTT broker for local use, a deployment's broker config, the signal runner."""
